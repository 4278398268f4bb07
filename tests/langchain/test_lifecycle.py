"""Copies, pickles and event loops: each LangChain instance owns its clients, and no loop leaks."""

from __future__ import annotations

import asyncio
import copy
import os
import pickle
import time
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from dashscope_embed import EmbeddingResult, SparseVector, Usage
from dashscope_embed.adapters import Runtime, Space
from dashscope_embed.emulator import Emulator, EmulatorServer
from langchain_dashscope_embed import DashScopeEmbeddings, DashScopeMultimodalEmbeddings

from .conftest import EMU_URL, TEST_KEY

Make = Callable[..., DashScopeEmbeddings]
SECRET = "sk-lifecycle-secret-7788"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settled_fds(limit: int) -> int:
    """Open fds once the emulator's handler threads have hung up (they close on EOF)."""
    deadline = time.monotonic() + 3
    while open_fds() > limit and time.monotonic() < deadline:
        time.sleep(0.02)
    return open_fds()


def test_model_copy_uses_its_own_fields_clients_usage_and_sparse_cache(
    make_emb: Make, emulator: Emulator
) -> None:
    """A copy with a new model, host and timeout calls with those, and counts its own usage."""
    emb = make_emb(output_type="dense&sparse")
    emb.embed_documents(["hello world"])
    other = emb.model_copy(
        update={"model": "text-embedding-v3", "base_url": "http://other.test", "timeout": 7.0}
    )
    assert other._rt is not emb._rt
    assert other._rt.client.config.timeout == 7.0
    other.sparse_view().embed_documents(["hello world"])  # not served from emb's v4 cache
    other.embed_query("x")
    sent = emulator.requests[1:]
    assert [r.json["model"] for r in sent] == ["text-embedding-v3", "text-embedding-v3"]
    assert [r.headers["host"] for r in sent] == ["other.test", "other.test"]
    assert (emb.usage.requests, other.usage.requests) == (1, 2)
    assert emb._rt.client.config.base_url == EMU_URL
    with pytest.raises(TypeError, match=r"unknown field 'dimensions' \(did you mean 'dimension'"):
        emb.model_copy(update={"dimensions": 512})


def test_copy_and_deepcopy_get_fresh_runtimes(make_emb: Make, emulator: Emulator) -> None:
    """copy.copy and copy.deepcopy keep fields and the injected client, not usage totals."""
    emb = make_emb(dimension=64, query_instruct="Find it")
    emb.embed_query("q")
    for twin in (copy.copy(emb), copy.deepcopy(emb)):
        assert twin._rt is not emb._rt
        assert twin.model_dump() == emb.model_dump()
        assert twin.http_client is emb.http_client
        assert twin.usage == Usage()
        assert len(twin.embed_query("q")) == 64
    assert emb.usage.requests == 1
    assert len(emulator.requests) == 3


def test_sparse_cache_key_includes_model_dimension_and_instruct() -> None:
    """A kept sparse vector is only served to the same (model, dimension, instruct, type)."""
    rt = Runtime(TEST_KEY, {"base_url": EMU_URL}, sparse_cache_size=10)
    vec = SparseVector((3, 5), (0.5, 0.25))
    result = EmbeddingResult(np.zeros((1, 0), np.float32), (vec,), Usage(), (), "m", None)
    space: Space = ("text-embedding-v4", 512, "A", "query")
    rt.record(result, texts=["t"], space=space)
    assert rt.cached_sparse(["t"], space) == [vec.merged()]
    others: list[Space] = [
        ("text-embedding-v3", 512, "A", "query"),
        ("text-embedding-v4", 1024, "A", "query"),
        ("text-embedding-v4", 512, "B", "query"),
        ("text-embedding-v4", 512, "A", "document"),
    ]
    assert [rt.cached_sparse(["t"], other) for other in others] == [[None]] * 4


@pytest.mark.integration
def test_pickle_and_deepcopy_keep_key_and_options(emulator_server: EmulatorServer) -> None:
    """Pickled and deep-copied instances call the same host with the same key and options."""
    http = httpx.Client()
    emb = DashScopeEmbeddings(
        api_key=SECRET, base_url=emulator_server.url, dimension=64, http_client=http
    )
    restored = pickle.loads(pickle.dumps(emb))
    assert restored.http_client is None  # an injected client holds sockets: not pickled
    assert restored.model_dump() == emb.model_dump()
    assert restored.dashscope_api_key is not None
    assert restored.dashscope_api_key.get_secret_value() == SECRET
    for text in (repr(restored), str(restored.model_dump()), restored.model_dump_json()):
        assert SECRET not in text
    assert len(restored.embed_query("x")) == 64
    assert len(asyncio.run(restored.aembed_query("x"))) == 64
    assert len(copy.deepcopy(emb).embed_documents(["a", "b"])) == 2
    requests = emulator_server.emulator.requests
    assert len(requests) == 3
    assert all(r.used_key(SECRET) for r in requests)
    assert [r.json["parameters"]["dimension"] for r in requests] == [64, 64, 64]
    http.close()


@pytest.mark.integration
@pytest.mark.parametrize("cls", [DashScopeEmbeddings, DashScopeMultimodalEmbeddings])
def test_thirty_event_loops_leave_no_client_and_no_socket_behind(
    emulator_server: EmulatorServer, cls: type[DashScopeEmbeddings]
) -> None:
    """30 asyncio.run calls: each loop's client is closed as the loop ends; fds stay flat."""
    emb = cls(api_key=TEST_KEY, base_url=emulator_server.url)
    asyncio.run(emb.aembed_query("warm up"))  # imports, the server's first thread
    before = settled_fds(open_fds())
    for i in range(30):
        assert len(asyncio.run(emb.aembed_query(f"query {i}"))) > 0
    assert len(emb._rt.aclient._pools) == 0
    assert settled_fds(before + 2) <= before + 2
    assert len(emulator_server.emulator.requests) == 31
