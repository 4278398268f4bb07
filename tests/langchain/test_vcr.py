"""Recorded cassettes: the standard integration suite and wire checks, replayable with no server.

By default (no ``--record-mode``) every test here replays ``tests/cassettes/langchain/test_vcr/``
with the embeddings pointed at a closed port and a dummy key. ``make record`` re-records them
against the emulator (or the real service when ``DASHSCOPE_API_KEY`` is set). See conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from dashscope_embed.emulator import text_vector
from langchain_dashscope_embed import DashScopeEmbeddings

from .conftest import CASSETTES, EMULATOR_LABEL, LIVE_LABEL, Caller, VcrTarget

pytestmark = pytest.mark.vcr
TEXTS = ["West Lake is in Hangzhou.", "Green tea grows on the hills.", "Pandas eat bamboo."]
QUERY = "Where is West Lake?"


def bodies(cassette: Any) -> list[dict[str, Any]]:
    """Recorded request bodies (during replay they equal ours: requests match on the body)."""
    return [json.loads(r.body) for r in cassette.requests]


def source(cassette: Any) -> str:
    """The X-Recorded-From label of the cassette's answers."""
    (label,) = {r["headers"]["X-Recorded-From"][0] for r in cassette.responses}
    return str(label)


class TestVcrStandardIntegration(EmbeddingsIntegrationTests):
    """The unmodified standard integration suite, from cassettes."""

    params: dict[str, Any] = {}  # noqa: RUF012 - set per test by the fixture below

    @pytest.fixture(autouse=True)
    def _target(self, vcr_target: VcrTarget) -> None:
        self.params = vcr_target.params

    @property
    def embeddings_class(self) -> type[DashScopeEmbeddings]:
        return DashScopeEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return self.params


def test_documents_and_query_on_the_wire(vcr: Any, vcr_target: VcrTarget, call: Caller) -> None:
    """embed_documents sends document, embed_query sends query, vectors come back in order."""
    emb = DashScopeEmbeddings(**vcr_target.params)
    docs = call(emb, "embed_documents", TEXTS)
    query = call(emb, "embed_query", QUERY)
    sent = bodies(vcr)
    assert [b["parameters"]["text_type"] for b in sent] == ["document", "query"]
    assert [b["input"]["texts"] for b in sent] == [TEXTS, [QUERY]]
    assert len(docs) == 3
    assert all(len(v) == 64 for v in [*docs, query])
    if source(vcr) == EMULATOR_LABEL:
        for text, vec in zip(TEXTS, docs, strict=True):
            assert np.allclose(vec, text_vector("text-embedding-v4", text, dimension=64), atol=1e-5)


def test_twenty_five_texts_are_three_requests(vcr: Any, vcr_target: VcrTarget) -> None:
    """25 texts for v4 are recorded as three requests of 10, 10 and 5 rows."""
    texts = [f"passage {i} on rivers, hills and tea" for i in range(25)]
    vectors = DashScopeEmbeddings(**vcr_target.params).embed_documents(texts)
    assert sorted(len(b["input"]["texts"]) for b in bodies(vcr)) == [5, 10, 10]
    assert len(vectors) == 25


def test_dense_and_sparse_from_one_recorded_call(vcr: Any, vcr_target: VcrTarget) -> None:
    """A dense&sparse call feeds the sparse view: one request recorded for both."""
    dense = DashScopeEmbeddings(**vcr_target.params, output_type="dense&sparse")
    vectors = dense.embed_documents(TEXTS)
    sparse = dense.sparse_view().embed_documents(TEXTS)
    assert [b["parameters"]["output_type"] for b in bodies(vcr)] == ["dense&sparse"]
    assert len(vectors) == len(sparse) == 3
    assert all(v.indices == sorted(set(v.indices)) and v.values for v in sparse)


@pytest.mark.vcr("test_documents_and_query_on_the_wire[sync].yaml", record_mode="none")
def test_replay_needs_no_server_and_no_key(vcr: Any) -> None:
    """Replay-only mode answers from the cassette while base_url is a closed port (no emulator)."""
    emb = DashScopeEmbeddings(
        api_key="sk-not-a-real-key", base_url="http://127.0.0.1:9", dimension=64, max_retries=0
    )
    docs = emb.embed_documents(TEXTS)
    query = emb.embed_query(QUERY)
    assert vcr.play_count == 2
    assert vcr.all_played
    assert source(vcr) in (EMULATOR_LABEL, LIVE_LABEL)
    if source(vcr) == EMULATOR_LABEL:
        expected = text_vector("text-embedding-v4", QUERY, dimension=64, text_type="query")
        assert np.allclose(query, expected, atol=1e-5)
        assert np.allclose(docs[2], text_vector("text-embedding-v4", TEXTS[2], dimension=64))


def test_cassettes_hold_no_secrets_and_are_labelled() -> None:
    """No cassette holds a Bearer value, an sk- key, a user agent or an X-DashScope-* header."""
    files = sorted(CASSETTES.rglob("*.yaml"))
    assert len(files) >= 8
    for path in files:
        text = Path(path).read_text()
        lower = text.lower()
        for banned in ("bearer", "sk-", "user-agent", "x-dashscope", "authorization"):
            assert banned not in lower, (banned, path)
        assert EMULATOR_LABEL in text or LIVE_LABEL in text, path
