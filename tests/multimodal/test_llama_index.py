"""DashScopeMultiModalEmbedding: image hooks, texts in the same space, a real multimodal index."""

from __future__ import annotations

import asyncio
import base64
import pickle
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from llama_index.core import Settings, StorageContext
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms.mock import MockLLM
from llama_index.core.schema import ImageNode, TextNode

from dashscope_embed import InvalidInputError
from dashscope_embed.emulator import Emulator, EmulatorServer, text_vector
from dashscope_embed.emulator._mm_vectors import multimodal_vector
from llama_index_dashscope_embed.multimodal import DashScopeMultiModalEmbedding
from llama_index_dashscope_embed.usage import DashScopeUsageEvent
from tests.conftest import TEST_KEY

from .conftest import EMU_URL, GALLERY, contents

PLUS = "tongyi-embedding-vision-plus"
Make = Callable[..., DashScopeMultiModalEmbedding]


@pytest.fixture(autouse=True)
def _no_openai() -> Iterator[None]:
    """Nothing falls back to OpenAI: the global LLM is a MockLLM and restored afterwards."""
    previous = Settings._llm
    Settings.llm = MockLLM()
    yield
    Settings._llm = previous


@pytest.fixture
def make(emulator: Emulator) -> Make:
    """Build the adapter on the in-process emulator (sync and async transports)."""

    def _make(**kwargs: Any) -> DashScopeMultiModalEmbedding:
        kwargs.setdefault("api_key", TEST_KEY)
        kwargs.setdefault("base_url", EMU_URL)
        kwargs.setdefault("http_client", httpx.Client(transport=emulator.transport()))
        kwargs.setdefault("async_http_client", httpx.AsyncClient(transport=emulator.transport()))
        return DashScopeMultiModalEmbedding(**kwargs)

    return _make


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_image_hooks_take_paths_urls_and_bytesio(
    make: Make, emulator: Emulator, gallery: dict[str, Path], mode: str
) -> None:
    """Image hooks accept a str path, a URL and the BytesIO that ImageNode.resolve_image()
    returns, send one batch, and return the emulator's image vectors."""
    emb = make(dimension=256)
    cat = gallery["cat"].read_bytes()
    images = [str(gallery["cat"]), "https://img.test/dog.png", BytesIO(cat)]
    if mode == "sync":
        single = emb.get_image_embedding(images[2])
        batch = emb.get_image_embedding_batch(images)
    else:

        async def go() -> tuple[list[float], list[list[float]]]:
            one = await emb.aget_image_embedding(images[2])
            return one, await emb.aget_image_embedding_batch(images)

        single, batch = asyncio.run(go())
    sent = contents(emulator)
    assert sent == [  # the path and the BytesIO hold one image: sent once
        [{"image": data_uri(cat)}],
        [{"image": data_uri(cat)}, {"image": "https://img.test/dog.png"}],
    ]
    items = [sent[1][0], sent[1][1], sent[1][0]]
    expected = [multimodal_vector(PLUS, item, dimension=256) for item in items]
    np.testing.assert_allclose(np.array(batch), np.array(expected), atol=1e-6)
    assert single == batch[0]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_texts_share_the_image_space(make: Make, emulator: Emulator, mode: str) -> None:
    """Query and text hooks embed through the multimodal model (not a text model), in batches."""
    emb = make(model_name="qwen3-vl-embedding", query_instruct="Find the matching image.")
    if mode == "sync":
        query = emb.get_query_embedding("a cat")
        texts = emb.get_text_embedding_batch(["a cat", "a dog"])
    else:

        async def go() -> tuple[list[float], list[list[float]]]:
            q = await emb.aget_query_embedding("a cat")
            return q, await emb.aget_text_embedding_batch(["a cat", "a dog"])

        query, texts = asyncio.run(go())
    bodies = [r.json for r in emulator.requests]
    assert [b["model"] for b in bodies] == ["qwen3-vl-embedding"] * 2
    assert [b["parameters"] for b in bodies] == [{"instruct": "Find the matching image."}, {}]
    assert contents(emulator)[1] == [{"text": "a cat"}, {"text": "a dog"}]
    np.testing.assert_allclose(texts[1], text_vector("qwen3-vl-embedding", "a dog"), atol=1e-6)
    assert query != texts[0]  # the instruction steers the query


def test_two_event_loops_in_a_row(make: Make) -> None:
    """Two asyncio.run() calls in a row both work (one async core client per event loop)."""
    emb = make()
    a = asyncio.run(emb.aget_image_embedding("https://img.test/cat.png"))
    b = asyncio.run(emb.aget_image_embedding("https://img.test/cat.png"))
    assert a == b


def test_serialisation_keeps_options_and_drops_the_key(make: Make) -> None:
    """to_dict() round-trips every vector-changing option, never the key; pickling keeps it."""
    emb = make(dimension=512, api_key="sk-very-secret-key")
    data = emb.to_dict()
    assert data["model_name"] == PLUS
    assert data["dimension"] == 512
    assert data["embed_batch_size"] == 100
    assert data["base_url"] == EMU_URL
    assert "sk-very-secret-key" not in str(data) + repr(emb) + str(emb.to_payload())
    clone = DashScopeMultiModalEmbedding.from_dict(data, api_key=TEST_KEY)
    assert clone.dimension == 512
    assert clone.class_name() == "DashScopeMultiModalEmbedding"
    restored = pickle.loads(pickle.dumps(emb))
    assert restored._rt.sync.config.api_key == "sk-very-secret-key"


def test_options_are_checked_when_built(make: Make) -> None:
    """A dimension, instruct or region the model cannot take fails at construction."""
    with pytest.raises(InvalidInputError, match="allowed"):
        make(dimension=100)
    with pytest.raises(InvalidInputError, match="does not take instruct"):
        make(query_instruct="x")
    with pytest.raises(InvalidInputError, match="only in cn-beijing"):
        DashScopeMultiModalEmbedding(
            api_key=TEST_KEY, region="intl", model_name="multimodal-embedding-v1"
        )


def test_usage_event_per_call(make: Make) -> None:
    """Each call announces the server's usage on the instrumentation bus."""
    seen: list[DashScopeUsageEvent] = []

    class Handler(BaseEventHandler):
        def handle(self, event: BaseEvent, **kwargs: Any) -> None:
            if isinstance(event, DashScopeUsageEvent):
                seen.append(event)

    handler = Handler()
    root = get_dispatcher()
    root.add_event_handler(handler)
    try:
        emb = make()
        emb.get_image_embedding_batch(["https://img.test/a.png", "https://img.test/b.png"])
    finally:
        root.event_handlers.remove(handler)
    assert [(e.rows, e.requests, e.total_tokens) for e in seen] == [(2, 1, 512)]
    assert emb.usage.image_tokens == 512


def test_errors_are_raised_not_swallowed(make: Make, emulator: Emulator) -> None:
    """A missing image file raises a typed error naming it, never None or []."""
    emb = make()
    with pytest.raises(InvalidInputError, match="does not exist"):
        emb.get_image_embedding("/no/such/image.png")
    assert emulator.requests == []


# -- a real MultiModalVectorStoreIndex against the loopback emulator --------------------------


@pytest.mark.integration
def test_multimodal_index_answers_text_with_the_right_image(
    emulator_server: EmulatorServer,
    gallery: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MultiModalVectorStoreIndex built with this adapter retrieves, for a text query, the image
    whose content matches (path images and base64 images alike), sync and async."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    monkeypatch.setenv("DASHSCOPE_BASE_URL", emulator_server.url)
    emb = DashScopeMultiModalEmbedding()
    nodes: list[ImageNode | TextNode] = []
    for label in GALLERY:
        if label == "bicycle":  # a base64 image: resolve_image() hands over a BytesIO
            raw = base64.b64encode(gallery[label].read_bytes()).decode()
            nodes.append(ImageNode(image=raw, metadata={"label": label}))
        else:
            nodes.append(ImageNode(image_path=str(gallery[label]), metadata={"label": label}))
    nodes.append(TextNode(text="Cats sleep most of the day.", metadata={"label": "text"}))
    index = MultiModalVectorStoreIndex(
        nodes,
        embed_model=emb,
        image_embed_model=emb,
        storage_context=StorageContext.from_defaults(),
    )
    retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=1)
    queries = {
        "a photo of a dog": "dog",
        "mountain lake": "mountain lake",
        "a bicycle": "bicycle",
        "a red car parked outside": "red car",
    }
    for query, label in queries.items():
        hits = retriever.text_to_image_retrieve(query)
        assert [h.node.metadata["label"] for h in hits] == [label], query

    async def aretrieve(query: str) -> str:
        hits = await retriever.atext_to_image_retrieve(query)
        return str(hits[0].node.metadata["label"])

    assert asyncio.run(aretrieve("a cat")) == "cat"
    assert asyncio.run(aretrieve("a dog")) == "dog"  # a second event loop works too
    sent = [c for r in emulator_server.emulator.requests for c in r.json["input"]["contents"]]
    images = [c["image"] for c in sent if "image" in c]
    assert len(images) == 5
    assert all(i.startswith("data:image/png;base64,") for i in images)


def test_bare_image_nodes_are_dropped_by_llama_index_and_image_nodes_are_kept(
    make: Make, emulator: Emulator, gallery: dict[str, Path]
) -> None:
    """llama-index-core skips ImageNodes with no text and no metadata (the index then holds no
    image); ``image_nodes(paths)`` gives each node its file name and path, so every image is
    indexed, embedded once as an image (never as a text), and a text query finds the right one."""
    from llama_index_dashscope_embed import image_nodes

    emb = make()
    paths = [str(gallery[label]) for label in GALLERY]
    bare = MultiModalVectorStoreIndex(
        [ImageNode(image_path=p) for p in paths], embed_model=emb, image_embed_model=emb
    )
    assert bare.as_retriever(image_similarity_top_k=1).text_to_image_retrieve("a dog") == []
    assert contents(emulator) == [[{"text": "a dog"}]]  # the query only: no image was sent
    before = len(emulator.requests)

    nodes = image_nodes(paths, metadata={"album": "test"})
    assert [n.image_path for n in nodes] == paths
    assert nodes[1].metadata == {
        "file_path": paths[1],
        "file_name": Path(paths[1]).name,
        "album": "test",
    }
    assert all(n.text == "" for n in nodes)
    index = MultiModalVectorStoreIndex(nodes, embed_model=emb, image_embed_model=emb)
    retriever = index.as_retriever(image_similarity_top_k=1)
    hit = retriever.text_to_image_retrieve("a photo of a dog")[0]
    assert hit.node.image_path == str(gallery["dog"])
    sent = [c for request in contents(emulator)[before:] for c in request]
    assert sum("image" in c for c in sent) == len(GALLERY)  # each image embedded exactly once
    assert [c for c in sent if "text" in c] == [{"text": "a photo of a dog"}]  # just the query


def test_image_nodes_refuses_a_missing_file(tmp_path: Path) -> None:
    """A typo in a path fails when the nodes are built, naming the path."""
    from llama_index_dashscope_embed import image_nodes

    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        image_nodes([tmp_path / "nope.png"])
