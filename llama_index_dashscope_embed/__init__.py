"""LlamaIndex integration of dashscope-embed (Alibaba Cloud Model Studio embeddings).

Install with ``pip install "dashscope-embed[llamaindex]"``::

    from llama_index.core import Settings
    from llama_index_dashscope_embed import DashScopeEmbedding

    Settings.embed_model = DashScopeEmbedding()      # key from DASHSCOPE_API_KEY

Hybrid search: :class:`DashScopeSparseEmbedding`, :func:`qdrant_sparse_fns` (Qdrant) and
:class:`DashScopeMilvusSparseFunction` (Milvus). Real token usage: ``.usage`` / ``.last_usage``
on every adapter and :class:`DashScopeUsageEvent` on the instrumentation bus. Multimodal:
:class:`DashScopeMultiModalEmbedding`, and :func:`image_nodes` for image nodes that
``MultiModalVectorStoreIndex`` keeps.
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'llama_index_dashscope_embed needs LlamaIndex: pip install "dashscope-embed[llamaindex]"'
    ) from exc

from .base import DashScopeEmbedding
from .milvus import DashScopeMilvusSparseFunction
from .multimodal import DashScopeMultiModalEmbedding
from .nodes import image_nodes
from .sparse import DashScopeSparseEmbedding, QdrantSparseFns, qdrant_sparse_fns
from .usage import DashScopeUsageEvent, DashScopeUsageHandler

__all__ = [
    "DashScopeEmbedding",
    "DashScopeMilvusSparseFunction",
    "DashScopeMultiModalEmbedding",
    "DashScopeSparseEmbedding",
    "DashScopeUsageEvent",
    "DashScopeUsageHandler",
    "QdrantSparseFns",
    "image_nodes",
    "qdrant_sparse_fns",
]
