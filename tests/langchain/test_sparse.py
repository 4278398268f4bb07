"""Sparse vectors for Qdrant and Milvus, and one API call serving both dense and sparse."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
from langchain_milvus.utils.sparse import BaseSparseEmbedding
from langchain_qdrant import SparseEmbeddings, SparseVector

from dashscope_embed import InvalidInputError
from dashscope_embed.emulator import Emulator, sparse_vector
from langchain_dashscope_embed import (
    DashScopeEmbeddings,
    DashScopeMilvusSparseEmbeddings,
    DashScopeSparseEmbeddings,
)

from .conftest import Caller, wire_params

Make = Callable[..., DashScopeEmbeddings]
REPEATS = "tea tea green tea from the hills of hangzhou"


def expected_sparse(text: str) -> dict[int, float]:
    """The emulator's sparse answer merged: unique indices keeping each index's largest weight."""
    merged: dict[int, float] = {}
    for entry in sparse_vector(text):
        index, value = int(entry["index"]), float(entry["value"])
        merged[index] = max(value, merged.get(index, value))
    return dict(sorted(merged.items()))


def pairs(vector: SparseVector) -> dict[int, float]:
    """A Qdrant SparseVector as {index: weight}."""
    return dict(zip(vector.indices, vector.values, strict=True))


def test_qdrant_class_contract_and_merged_indices(
    make_emb: Make, emulator: Emulator, call: Caller
) -> None:
    """Qdrant SparseVectors with unique ascending indices: repeated tokens merged by max weight."""
    sparse = make_emb().sparse_view()
    assert isinstance(sparse, SparseEmbeddings)
    docs = call(sparse, "embed_documents", [REPEATS, "black tea"])
    query = call(sparse, "embed_query", "green tea")
    assert all(isinstance(v, SparseVector) for v in [*docs, query])
    assert len(sparse_vector(REPEATS)) > len(docs[0].indices)  # the emulator repeats "tea"
    assert dict(zip(docs[0].indices, docs[0].values, strict=True)) == expected_sparse(REPEATS)
    assert docs[0].indices == sorted(set(docs[0].indices))
    assert dict(zip(query.indices, query.values, strict=True)) == expected_sparse("green tea")
    assert wire_params(emulator) == [
        {"text_type": "document", "output_type": "sparse"},
        {"text_type": "query", "output_type": "sparse"},
    ]


def test_milvus_class_contract(make_emb: Make, emulator: Emulator, call: Caller) -> None:
    """The Milvus view is a BaseSparseEmbedding returning {index: weight} dicts (merged)."""
    sparse = make_emb().sparse_view("milvus")
    assert isinstance(sparse, BaseSparseEmbedding)
    assert call(sparse, "embed_documents", [REPEATS]) == [expected_sparse(REPEATS)]
    assert call(sparse, "embed_query", "green tea") == expected_sparse("green tea")
    assert [p["text_type"] for p in wire_params(emulator)] == ["document", "query"]


@pytest.mark.parametrize("kind", ["qdrant", "milvus"])
def test_dense_and_sparse_share_one_call(
    make_emb: Make, emulator: Emulator, call: Caller, kind: str
) -> None:
    """With dense&sparse output the sparse view reads the dense call's sparse half: no request."""
    dense = make_emb(output_type="dense&sparse", query_instruct="find tea")
    sparse = dense.sparse_view(kind)  # type: ignore[call-overload]
    texts = [f"tea garden {i} near the lake" for i in range(12)]
    call(dense, "embed_documents", texts)
    call(dense, "embed_query", "which garden?")
    sent = len(emulator.requests)
    docs = call(sparse, "embed_documents", texts)
    query = call(sparse, "embed_query", "which garden?")
    assert sent == 3  # 10 + 2 documents, 1 query
    assert len(emulator.requests) == 3  # and nothing more for the sparse side
    assert [p["output_type"] for p in wire_params(emulator)] == ["dense&sparse"] * 3
    as_dict = (lambda v: v) if kind == "milvus" else (lambda v: pairs(v))
    assert [as_dict(v) for v in docs] == [expected_sparse(t) for t in texts]
    assert as_dict(query) == expected_sparse("which garden?")


def test_sparse_view_fetches_only_what_it_misses(
    make_emb: Make, emulator: Emulator, call: Caller
) -> None:
    """Texts not seen by a dense&sparse call are fetched as sparse, and only those."""
    dense = make_emb(output_type="dense&sparse")
    call(dense, "embed_documents", ["seen one", "seen two"])
    out = call(dense.sparse_view(), "embed_documents", ["seen one", "new text", "seen two"])
    assert emulator.requests[-1].json["input"]["texts"] == ["new text"]
    assert emulator.requests[-1].json["parameters"]["output_type"] == "sparse"
    assert [pairs(v) for v in out] == [
        expected_sparse(t) for t in ["seen one", "new text", "seen two"]
    ]


def test_query_and_document_halves_are_kept_apart(make_emb: Make, emulator: Emulator) -> None:
    """A document's sparse half is never served for the same text as a query."""
    dense = make_emb(output_type="dense&sparse")
    dense.embed_documents(["same text"])
    dense.sparse_view().embed_query("same text")
    assert [p["text_type"] for p in wire_params(emulator)] == ["document", "query"]


def test_sparse_cache_is_bounded(make_emb: Make, emulator: Emulator) -> None:
    """sparse_cache_size caps the kept halves; an evicted text is simply fetched again."""
    dense = make_emb(output_type="dense&sparse", sparse_cache_size=2)
    dense.embed_documents(["alpha text", "beta text", "gamma text"])
    dense.sparse_view().embed_documents(["alpha text", "gamma text"])
    assert emulator.requests[-1].json["input"]["texts"] == ["alpha text"]


def test_usage_counts_sparse_calls_on_the_source(make_emb: Make) -> None:
    """Sparse calls add to the dense source's usage meter (one meter per instance)."""
    dense = make_emb()
    dense.sparse_view().embed_documents(["metered text"])
    assert dense.usage.requests == 1
    assert dense.usage.total_tokens > 0


def test_standalone_sparse_classes(emulator: Emulator, make_emb: Make) -> None:
    """Built from DashScopeEmbeddings fields, a sparse class makes its own sparse calls."""
    donor = make_emb()
    kwargs: dict[str, Any] = {
        "api_key": "sk-test-0000",
        "base_url": "http://emulator.test",
        "http_client": donor.http_client,
    }
    qdrant = DashScopeSparseEmbeddings(**kwargs)
    milvus = DashScopeMilvusSparseEmbeddings(**kwargs)
    assert milvus.embed_query("green tea") == expected_sparse("green tea")
    assert pairs(qdrant.embed_query("green tea")) == expected_sparse("green tea")
    with pytest.raises(TypeError, match="either"):
        DashScopeSparseEmbeddings(source=donor, model="text-embedding-v3")


def test_sparse_bad_input_raises_core_errors(
    make_emb: Make, emulator: Emulator, call: Caller
) -> None:
    """Bad input to a sparse view raises the core's InvalidInputError and sends nothing."""
    sparse = make_emb(output_type="dense&sparse").sparse_view()
    with pytest.raises(InvalidInputError, match="single string"):
        call(sparse, "embed_documents", "not a list")
    with pytest.raises(InvalidInputError, match="empty"):
        call(sparse, "embed_documents", ["fine", "  "])
    assert call(sparse, "embed_documents", []) == []
    assert emulator.requests == []


def test_modules_import_without_vector_store_packages() -> None:
    """Without langchain-qdrant/-milvus the modules import; using a class names the pip extra."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["langchain_qdrant"] = None
        sys.modules["langchain_milvus"] = None
        sys.modules["langchain_milvus.utils.sparse"] = None
        from langchain_dashscope_embed import DashScopeEmbeddings
        from langchain_dashscope_embed.qdrant import DashScopeSparseEmbeddings
        from langchain_dashscope_embed.milvus import DashScopeMilvusSparseEmbeddings
        emb = DashScopeEmbeddings(api_key="sk-x", base_url="http://emulator.test")
        for make in (DashScopeSparseEmbeddings, DashScopeMilvusSparseEmbeddings,
                     lambda **kw: emb.sparse_view(), lambda **kw: emb.sparse_view("milvus")):
            try:
                make(api_key="sk-x", base_url="http://emulator.test")
            except ImportError as exc:
                print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out == [
        'langchain-qdrant is not installed: pip install "dashscope-embed[qdrant]"',
        'langchain-milvus is not installed: pip install "dashscope-embed[milvus]"',
        'langchain-qdrant is not installed: pip install "dashscope-embed[qdrant]"',
        'langchain-milvus is not installed: pip install "dashscope-embed[milvus]"',
    ]


def test_package_import_stays_light() -> None:
    """Importing the package (and the dense class) loads neither qdrant-client nor pymilvus."""
    script = (
        "import sys; from langchain_dashscope_embed import DashScopeEmbeddings; "
        "heavy = ('qdrant_client', 'pymilvus', 'langchain_classic'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
