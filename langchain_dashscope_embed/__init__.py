"""LangChain integration for Alibaba Cloud Model Studio (DashScope) embeddings.

::

    from langchain_dashscope_embed import DashScopeEmbeddings

    emb = DashScopeEmbeddings()                 # text-embedding-v4, key from DASHSCOPE_API_KEY
    emb.embed_query("What is DashScope?")

Names are imported on first use, so ``import langchain_dashscope_embed`` stays light and the
vector-store extras (``[qdrant]``, ``[milvus]``) are only needed by the classes that use them.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a blocking import hook, or a broken half-install
        return True


# Checked without importing them, so the package stays light. A base install has neither, and
# the first name imported would otherwise fail with a bare "No module named 'pydantic'".
_MISSING = [m for m in ("langchain_core", "pydantic") if _absent(m)]
if _MISSING:
    raise ImportError(
        "langchain_dashscope_embed needs LangChain (missing: "
        + ", ".join(_MISSING)
        + '): pip install "dashscope-embed[langchain]"',
        name=_MISSING[0],
    )

if TYPE_CHECKING:
    from .cache import cached_embeddings
    from .embeddings import DashScopeEmbeddings
    from .milvus import DashScopeMilvusSparseEmbeddings
    from .multimodal import DashScopeMultimodalEmbeddings
    from .qdrant import DashScopeSparseEmbeddings

#: Public name -> submodule that defines it (add new classes here and in ``__all__``).
_EXPORTS = {
    "DashScopeEmbeddings": "embeddings",
    "DashScopeMilvusSparseEmbeddings": "milvus",
    "DashScopeMultimodalEmbeddings": "multimodal",
    "DashScopeSparseEmbeddings": "qdrant",
    "cached_embeddings": "cache",
}

__all__ = [
    "DashScopeEmbeddings",
    "DashScopeMilvusSparseEmbeddings",
    "DashScopeMultimodalEmbeddings",
    "DashScopeSparseEmbeddings",
    "cached_embeddings",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
