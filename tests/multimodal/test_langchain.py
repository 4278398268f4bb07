"""DashScopeMultimodalEmbeddings: texts and images in one space, and Chroma's image contract."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np
import pytest
from chromadb.config import Settings as ChromaSettings
from langchain_chroma import Chroma

from dashscope_embed import InvalidInputError
from dashscope_embed.emulator import Emulator, EmulatorServer, text_vector
from dashscope_embed.emulator._mm_vectors import multimodal_vector
from langchain_dashscope_embed.multimodal import DashScopeMultimodalEmbeddings
from tests.conftest import TEST_KEY

from .conftest import EMU_URL, GALLERY, contents, make_png

PLUS = "tongyi-embedding-vision-plus"
Make = Callable[..., DashScopeMultimodalEmbeddings]


@pytest.fixture
def make(emulator: Emulator) -> Make:
    """Build the embeddings on the in-process emulator (sync and async transports)."""

    def _make(**kwargs: Any) -> DashScopeMultimodalEmbeddings:
        kwargs.setdefault("api_key", TEST_KEY)
        kwargs.setdefault("base_url", EMU_URL)
        kwargs.setdefault("http_client", httpx.Client(transport=emulator.transport()))
        kwargs.setdefault("http_async_client", httpx.AsyncClient(transport=emulator.transport()))
        return DashScopeMultimodalEmbeddings(**kwargs)

    return _make


def run(mode: str, emb: DashScopeMultimodalEmbeddings, name: str, *args: Any) -> Any:
    """Call the sync hook, or run its async twin in a fresh event loop."""
    if mode == "sync":
        return getattr(emb, name)(*args)
    return asyncio.run(getattr(emb, "a" + name)(*args))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_texts_are_embedded_in_the_multimodal_space(
    make: Make, emulator: Emulator, mode: str
) -> None:
    """embed_documents / embed_query send texts to the multimodal endpoint and return its
    vectors as plain floats."""
    emb = make(dimension=256)
    docs = run(mode, emb, "embed_documents", ["a cat", "a dog"])
    query = run(mode, emb, "embed_query", "a cat")
    assert contents(emulator) == [[{"text": "a cat"}, {"text": "a dog"}], [{"text": "a cat"}]]
    assert all(type(x) is float for x in docs[0] + query)
    np.testing.assert_allclose(docs[1], text_vector(PLUS, "a dog", dimension=256), atol=1e-6)
    np.testing.assert_allclose(query, text_vector(PLUS, "a cat", dimension=256), atol=1e-6)
    assert [r.json["parameters"] for r in emulator.requests] == [{"dimension": 256}] * 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_embed_image_takes_paths_urls_and_data_uris(
    make: Make, emulator: Emulator, mode: str, gallery: dict[str, Path]
) -> None:
    """embed_image(uris=...) reads local paths inline, passes URLs and data URIs through, and
    returns the emulator's image vectors in order."""
    cat = gallery["cat"].read_bytes()
    data_uri = "data:image/png;base64," + base64.b64encode(cat).decode()
    uris = [str(gallery["cat"]), "https://img.test/dog.png", data_uri]
    emb = make()
    vectors = run(mode, emb, "embed_image", uris)
    assert contents(emulator) == [[{"image": data_uri}, {"image": "https://img.test/dog.png"}]]
    sent = contents(emulator)[0]  # the path and the data URI are one image: sent once
    expected = [multimodal_vector(PLUS, item) for item in [sent[0], sent[1], sent[0]]]
    np.testing.assert_allclose(np.array(vectors), np.array(expected), atol=1e-6)
    assert emb.usage.requests == 1
    assert emb.usage.image_tokens > 0


def test_query_instruct_only_with_queries(make: Make, emulator: Emulator) -> None:
    """query_instruct is sent as instruct with embed_query only, never with documents/images."""
    emb = make(model="qwen3-vl-embedding", query_instruct="Find the matching image.")
    emb.embed_query("a cat")
    emb.embed_documents(["a cat"])
    emb.embed_image(["https://img.test/cat.png"])
    assert [r.json["parameters"] for r in emulator.requests] == [
        {"instruct": "Find the matching image."},
        {},
        {},
    ]


def test_two_event_loops_in_a_row(make: Make) -> None:
    """Two asyncio.run() calls in a row both work (one async client per event loop)."""
    emb = make()
    first = asyncio.run(emb.aembed_image(["https://img.test/cat.png"]))
    second = asyncio.run(emb.aembed_image(["https://img.test/cat.png"]))
    assert first == second


@pytest.mark.integration
def test_default_async_client_per_loop(emulator_server: EmulatorServer) -> None:
    """Without injected clients the adapter builds a fresh async client for each event loop."""
    emb = DashScopeMultimodalEmbeddings(api_key=TEST_KEY, base_url=emulator_server.url)
    a = asyncio.run(emb.aembed_query("cat"))
    b = asyncio.run(emb.aembed_query("cat"))
    assert a == b == emb.embed_query("cat")


def test_options_are_checked_when_built(make: Make) -> None:
    """A dimension, instruct or region the model cannot take fails at construction."""
    with pytest.raises(InvalidInputError, match="allowed: 1152"):
        make(dimension=100)
    with pytest.raises(InvalidInputError, match="does not take instruct"):
        make(query_instruct="x")
    with pytest.raises(InvalidInputError, match="only in cn-beijing"):
        DashScopeMultimodalEmbeddings(
            api_key=TEST_KEY, region="intl", model="multimodal-embedding-v1"
        )
    with pytest.raises(TypeError, match="did you mean 'dimension'"):
        make(dimensions=256)


def test_key_never_shown(make: Make) -> None:
    """The key is a SecretStr: absent from repr, str and model_dump."""
    emb = make(api_key="sk-very-secret-key")
    assert "sk-very-secret-key" not in repr(emb) + str(emb) + str(emb.model_dump())


def test_documents_must_be_texts(make: Make, emulator: Emulator) -> None:
    """embed_documents refuses a non-text (images go through embed_image) and embed_image
    refuses a bare string; nothing is sent."""
    emb = make()
    with pytest.raises(InvalidInputError, match="use embed_image"):
        emb.embed_documents(["ok", b"bytes"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="wrap it as"):
        emb.embed_image("cat.png")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="does not exist"):
        emb.embed_image(["/no/such/cat.png"])
    assert emulator.requests == []


def test_a_text_naming_a_file_is_a_text(
    make: Make, emulator: Emulator, gallery: dict[str, Path]
) -> None:
    """embed_query of a string that names an existing image embeds the string, not the file."""
    make().embed_query(str(gallery["cat"]))
    assert contents(emulator) == [[{"text": str(gallery["cat"])}]]


# -- Chroma (langchain-chroma, in-process chromadb) against the loopback emulator -------------


@pytest.fixture
def chroma_emb(
    emulator_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> DashScopeMultimodalEmbeddings:
    """Embeddings configured the way a user would: two environment variables."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    monkeypatch.setenv("DASHSCOPE_BASE_URL", emulator_server.url)
    return DashScopeMultimodalEmbeddings()


def _store(emb: DashScopeMultimodalEmbeddings, name: str) -> Chroma:
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    return Chroma(
        collection_name=name,
        embedding_function=emb,
        client=client,
        collection_metadata={"hnsw:space": "cosine"},
    )


@pytest.mark.integration
def test_chroma_image_search(
    chroma_emb: DashScopeMultimodalEmbeddings,
    gallery: dict[str, Path],
    emulator_server: EmulatorServer,
    tmp_path: Path,
) -> None:
    """Chroma.add_images + similarity_search_by_image find the image with the query image's
    label, and a text query finds the image it describes."""
    store = _store(chroma_emb, "gallery-images")
    labels = list(GALLERY)
    store.add_images(
        uris=[str(gallery[lb]) for lb in labels], metadatas=[{"label": lb} for lb in labels]
    )
    for label in labels:
        probe = tmp_path / f"probe-{label}.png"
        probe.write_bytes(make_png(label, (7, 7, 7)))  # other pixels, same label
        hits = store.similarity_search_by_image(uri=str(probe), k=1)
        assert hits[0].metadata == {"label": label}
    for query, label in [
        ("a photo of a dog", "dog"),
        ("mountain lake at dawn", "mountain lake"),
        ("a shiny red car", "red car"),
    ]:
        assert store.similarity_search(query, k=1)[0].metadata == {"label": label}
    sent = [c for r in emulator_server.emulator.requests for c in r.json["input"]["contents"]]
    assert all(not c.get("image", "data:").startswith("/") for c in sent)  # inline only
    assert all(str(tmp_path) not in str(c) for c in sent)
