"""Fields and lifetimes: unknown arguments, assignments, copies and event loops (LlamaIndex)."""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.core.callbacks import CallbackManager
from llama_index.core.storage.kvstore import SimpleKVStore
from pydantic import ValidationError

from dashscope_embed import ConfigurationError, InvalidInputError
from dashscope_embed.emulator import Emulator, EmulatorServer
from llama_index_dashscope_embed import (
    DashScopeEmbedding,
    DashScopeMultiModalEmbedding,
    DashScopeSparseEmbedding,
)

from .conftest import EMU_URL, TEST_KEY, rows_per_request

Make = Callable[..., Any]
SECRET = "sk-lifecycle-secret-9911"
CLASSES = [DashScopeEmbedding, DashScopeMultiModalEmbedding, DashScopeSparseEmbedding]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settled_fds(limit: int) -> int:
    """Open fds once the emulator's handler threads have hung up (they close on EOF)."""
    deadline = time.monotonic() + 3
    while open_fds() > limit and time.monotonic() < deadline:
        time.sleep(0.02)
    return open_fds()


# --- finding 1: one async client per live loop, closed with its loop ---------------------------


@pytest.mark.integration
@pytest.mark.parametrize("cls", CLASSES)
def test_thirty_event_loops_leave_no_client_and_no_socket_behind(
    emulator_server: EmulatorServer, cls: type[DashScopeEmbedding]
) -> None:
    """30 asyncio.run calls: each loop's client is closed as the loop ends; fds stay flat."""
    emb = cls(api_key=TEST_KEY, base_url=emulator_server.url)
    asyncio.run(emb.aget_query_embedding("warm up"))  # imports, the server's first thread
    before = settled_fds(open_fds())
    for i in range(30):
        assert asyncio.run(emb.aget_query_embedding(f"query {i}"))
    assert len(emb._rt.aclient._pools) == 0
    assert settled_fds(before + 2) <= before + 2
    assert len(emulator_server.emulator.requests) == 31


@pytest.mark.integration
def test_loops_closed_without_shutdown_are_dropped(emulator_server: EmulatorServer) -> None:
    """A bare loop.close() skips the shutdown hook: the next call drops that loop's client."""
    emb = DashScopeEmbedding(api_key=TEST_KEY, base_url=emulator_server.url)
    asyncio.run(emb.aget_query_embedding("warm up"))
    before = settled_fds(open_fds())
    for i in range(5):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(emb.aget_query_embedding(f"query {i}"))
        loop.close()
    assert len(emb._rt.aclient._pools) == 1  # each new loop dropped the closed one before it
    asyncio.run(emb.aget_query_embedding("one more"))
    assert len(emb._rt.aclient._pools) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # sockets of the dead loops
        gc.collect()
    assert settled_fds(before + 2) <= before + 2


@pytest.mark.integration
async def test_aclose_closes_the_running_loops_client(emulator_server: EmulatorServer) -> None:
    """aclose() closes this loop's connection pool now; the next call opens a new one."""
    emb = DashScopeEmbedding(api_key=TEST_KEY, base_url=emulator_server.url)
    await emb.aget_query_embedding("q")
    first = await emb._rt.aclient._http()
    await emb.aclose()
    assert len(emb._rt.aclient._pools) == 0
    await emb.aget_query_embedding("q")
    assert await emb._rt.aclient._http() is not first
    assert first.is_closed


# --- finding 2: unknown keyword arguments ------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "text-embedding-v3"}, "unknown argument 'model' (did you mean 'model_name'?)"),
        ({"dimensions": 512}, "unknown argument 'dimensions' (did you mean 'dimension'?)"),
        ({"instruct": "Find"}, "unknown argument 'instruct' (did you mean 'query_instruct'?)"),
        ({"apikey": SECRET}, "unknown argument 'apikey' (did you mean 'api_key'?)"),
        ({"region_id": "intl"}, "unknown argument 'region_id' (did you mean 'region'?)"),
    ],
)
def test_unknown_arguments_are_refused_with_a_hint(
    make: Make, emulator: Emulator, cls: type, kwargs: dict[str, Any], message: str
) -> None:
    """A wrong name is a TypeError naming it and the right one, never its value or the key."""
    with pytest.raises(TypeError) as info:
        make(cls, api_key=SECRET, **kwargs)
    text = str(info.value)
    assert message in text
    assert f"{cls.__name__} got" in text
    assert SECRET not in text
    assert "sk-" not in repr(info.value.args)
    assert emulator.requests == []


@pytest.mark.parametrize("cls", CLASSES)
def test_every_unknown_argument_is_named_in_one_error(
    make: Make, emulator: Emulator, cls: type
) -> None:
    """Two wrong names (the README's ``model=`` + ``dimensions=``) are both named, each with its
    hint, in a single TypeError: porting code takes one run, not one per argument."""
    with pytest.raises(TypeError) as info:
        make(cls, api_key=SECRET, model="text-embedding-v3", dimensions=512)
    text = str(info.value)
    assert f"{cls.__name__} got 2 unknown arguments " in text
    assert "'dimensions' (did you mean 'dimension'?)" in text
    assert "'model' (did you mean 'model_name'?)" in text
    assert SECRET not in text
    assert "text-embedding-v3" not in text.split(". It accepts")[0]  # names, never values
    assert emulator.requests == []


def test_llama_index_construction_paths_still_work(make: Make, emulator: Emulator) -> None:
    """BaseEmbedding's own arguments, from_dict, model_dump, pickling and Settings all work."""
    callbacks = CallbackManager([])
    emb = make(
        DashScopeEmbedding,
        model_name="text-embedding-v3",
        dimension=512,
        embed_batch_size=5,
        num_workers=2,
        callback_manager=callbacks,
        rate_limiter=None,
    )
    assert make(DashScopeEmbedding, embeddings_cache=SimpleKVStore()).embeddings_cache
    assert (emb.model_name, emb.dimension, emb.embed_batch_size) == ("text-embedding-v3", 512, 5)
    assert emb.callback_manager is callbacks
    data = emb.to_dict()
    assert DashScopeEmbedding.from_dict(data, api_key=TEST_KEY).to_dict() == data
    dumped = emb.model_dump()  # carries class_name, as BaseComponent adds it
    assert DashScopeEmbedding(api_key=TEST_KEY, **dumped).to_dict() == data
    assert pickle.loads(pickle.dumps(emb)).to_dict() == data
    previous = Settings._embed_model
    try:
        Settings.embed_model = emb  # assigns callback_manager on the model
        assert Settings.embed_model is emb
        assert emb.callback_manager is Settings.callback_manager
    finally:
        Settings._embed_model = previous
    emb.get_text_embedding_batch([f"t{i}" for i in range(7)])
    assert rows_per_request(emulator) == [5, 2]
    assert {r.json["model"] for r in emulator.requests} == {"text-embedding-v3"}
    assert {r.json["parameters"]["dimension"] for r in emulator.requests} == {512}


# --- finding 4: assignments are validated and rebuild the clients ------------------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_assigning_the_endpoint_moves_the_requests(
    make: Make, emulator: Emulator, cls: type[DashScopeEmbedding]
) -> None:
    """base_url/timeout assignments rebuild the core clients; to_dict and the wire agree."""
    emb = make(cls)
    emb.base_url = "http://moved.test"
    emb.timeout = 3.0
    emb.get_query_embedding("q")
    asyncio.run(emb.aget_query_embedding("q"))
    assert [r.headers["host"] for r in emulator.requests] == ["moved.test", "moved.test"]
    assert emb.model_dump()["base_url"] == "http://moved.test"
    assert emb._rt.sync.config.timeout == 3.0
    restored = pickle.loads(pickle.dumps(emb))
    assert restored._rt.sync.config.base_url == "http://moved.test"
    assert restored._rt.sync.config.api_key == TEST_KEY


def test_assigning_a_region_re_resolves_the_host(make: Make) -> None:
    """region='intl' after construction moves to the international host (not the pinned one)."""
    emb = make(DashScopeEmbedding)
    emb.region = "intl"
    assert (emb.region, emb.base_url) == ("ap-southeast-1", "https://dashscope-intl.aliyuncs.com")
    assert emb._rt.sync.config.base_url == "https://dashscope-intl.aliyuncs.com"


def test_refused_assignments_change_nothing(make: Make, emulator: Emulator) -> None:
    """A batch size below 1, a bad dimension or region raise and leave the model as is."""
    emb = make(DashScopeEmbedding)
    with pytest.raises(ValidationError, match="embed_batch_size"):
        emb.embed_batch_size = 0
    with pytest.raises(InvalidInputError, match="dimension=7 is not allowed"):
        emb.dimension = 7
    with pytest.raises(ConfigurationError, match="unknown region 'mars'"):
        emb.region = "mars"
    mm = make(DashScopeMultiModalEmbedding, model_name="multimodal-embedding-v1")
    with pytest.raises(InvalidInputError, match="served only in cn-beijing"):
        mm.region = "intl"
    assert (mm.region, mm.base_url) == (None, EMU_URL)
    assert (emb.embed_batch_size, emb.dimension, emb.region, emb.base_url) == (
        2048,
        None,
        None,
        EMU_URL,
    )
    emb.get_text_embedding_batch([f"t{i}" for i in range(25)])
    assert sorted(rows_per_request(emulator), reverse=True) == [10, 10, 5]  # side by side
    assert all("dimension" not in r.json.get("parameters", {}) for r in emulator.requests)


def test_model_copy_gets_its_own_clients(make: Make, emulator: Emulator) -> None:
    """model_copy(update=...) validates the update and calls its own host; the original stays."""
    emb = make(DashScopeEmbedding)
    twin = emb.model_copy(update={"base_url": "http://twin.test", "dimension": 512})
    assert twin._rt is not emb._rt
    twin.get_query_embedding("q")
    emb.get_query_embedding("q")
    assert [r.headers["host"] for r in emulator.requests] == ["twin.test", "emulator.test"]
    assert [r.json["parameters"].get("dimension") for r in emulator.requests] == [512, None]
    assert (twin.usage.requests, emb.usage.requests) == (1, 1)
    with pytest.raises(TypeError, match="did you mean 'dimension'"):
        emb.model_copy(update={"dimensions": 64})
