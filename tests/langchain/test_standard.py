"""langchain-tests standard suites, unmodified: unit (construction, env) and integration (emulator).

The integration suite talks to the emulator on a loopback socket started once for the module;
``test_vcr.py`` runs the same suite again from recorded cassettes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from dashscope_embed.emulator import EmulatorConfig, EmulatorServer, serve
from langchain_dashscope_embed import DashScopeEmbeddings
from tests.conftest import TEST_KEY

from .conftest import LIVE_ENV


class TestDashScopeEmbeddingsUnit(EmbeddingsUnitTests):
    """Construction from arguments and from ``DASHSCOPE_API_KEY``."""

    @property
    def embeddings_class(self) -> type[DashScopeEmbeddings]:
        return DashScopeEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "text-embedding-v4", "api_key": TEST_KEY}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"DASHSCOPE_API_KEY": "sk-from-env-0001"},
            {"model": "text-embedding-v3", "dimension": 512},
            {
                "dashscope_api_key": "sk-from-env-0001",
                "model": "text-embedding-v3",
                "dimension": 512,
            },
        )


@pytest.fixture(scope="module")
def loopback_emulator() -> Iterator[EmulatorServer]:
    """One emulator on 127.0.0.1 for the whole standard integration suite."""
    with serve(config=EmulatorConfig()) as server:
        yield server


@pytest.mark.integration
class TestDashScopeEmbeddingsIntegration(EmbeddingsIntegrationTests):
    """embed_query / embed_documents and their async twins against the loopback emulator."""

    url: str = ""

    @pytest.fixture(autouse=True)
    def _point_at_emulator(self, loopback_emulator: EmulatorServer) -> None:
        self.url = loopback_emulator.url

    @property
    def embeddings_class(self) -> type[DashScopeEmbeddings]:
        return DashScopeEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"api_key": TEST_KEY, "base_url": self.url}


@pytest.mark.live
@pytest.mark.skipif("DASHSCOPE_API_KEY" not in LIVE_ENV, reason="needs DASHSCOPE_API_KEY")
def test_live_service_round_trip() -> None:
    """Against the real service: one vector per text, queries as queries, usage reported."""
    emb = DashScopeEmbeddings(
        api_key=LIVE_ENV["DASHSCOPE_API_KEY"],
        region=LIVE_ENV.get("DASHSCOPE_REGION"),
        base_url=LIVE_ENV.get("DASHSCOPE_BASE_URL"),
        workspace=LIVE_ENV.get("DASHSCOPE_WORKSPACE"),
        dimension=256,
    )
    docs = emb.embed_documents(["West Lake is in Hangzhou.", "Pandas eat bamboo."])
    query = emb.embed_query("What do pandas eat?")
    assert [len(v) for v in [*docs, query]] == [256, 256, 256]
    scores = [sum(a * b for a, b in zip(query, d, strict=True)) for d in docs]
    assert scores[1] > scores[0]
    assert emb.usage.requests == 2
    assert emb.usage.total_tokens > 0
