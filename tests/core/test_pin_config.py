"""Pins of host and region resolution (bug 6): argument > environment > default, resolved once.

An explicit ``base_url=`` argument (a proxy, the emulator) means no region rules unless
``region=`` is passed explicitly too; ``DASHSCOPE_REGION`` never applies to such a client.
"""

from __future__ import annotations

import httpx
import pytest

from dashscope_embed import DashScopeClient, InvalidInputError
from dashscope_embed._config import resolve_config

from .conftest import KEY, ok_body


@pytest.mark.parametrize(
    ("kwargs", "env", "url", "region"),
    [
        # a base_url argument clears a region from the environment
        (
            {"base_url": "http://127.0.0.1:8123"},
            {"DASHSCOPE_REGION": "intl"},
            "http://127.0.0.1:8123",
            None,
        ),
        (
            {"base_url": "http://proxy.test/api/v1"},
            {"DASHSCOPE_API_REGION": "us"},
            "http://proxy.test",
            None,
        ),
        (
            {"base_url": "http://p.test"},
            {"DASHSCOPE_REGION": "intl", "DASHSCOPE_BASE_URL": "http://e.test"},
            "http://p.test",
            None,
        ),
        # ... unless region= is an argument too
        ({"base_url": "http://p.test", "region": "intl"}, {}, "http://p.test", "ap-southeast-1"),
        (
            {"base_url": "http://p.test", "region": "cn"},
            {"DASHSCOPE_REGION": "intl"},
            "http://p.test",
            "cn-beijing",
        ),
        # no base_url argument: the environment's region applies
        ({}, {"DASHSCOPE_REGION": "intl"}, "https://dashscope-intl.aliyuncs.com", "ap-southeast-1"),
        (
            {},
            {"DASHSCOPE_REGION": "intl", "DASHSCOPE_BASE_URL": "http://e.test"},
            "http://e.test",
            "ap-southeast-1",
        ),
        ({}, {"DASHSCOPE_BASE_URL": "http://e.test"}, "http://e.test", None),
        (
            {"region": "intl"},
            {"DASHSCOPE_BASE_URL": "http://e.test"},
            "https://dashscope-intl.aliyuncs.com",
            "ap-southeast-1",
        ),
        (
            {"region": "us"},
            {"DASHSCOPE_REGION": "intl"},
            "https://dashscope-us.aliyuncs.com",
            "us-east-1",
        ),
        ({}, {}, "https://dashscope.aliyuncs.com", "cn-beijing"),
    ],
)
def test_host_and_region_resolution(
    kwargs: dict[str, str], env: dict[str, str], url: str, region: str | None
) -> None:
    """The host and the enforced region follow argument > environment > default."""
    cfg = resolve_config(api_key=KEY, env=env, **kwargs)
    assert (cfg.base_url, cfg.region) == (url, region)


def test_an_env_region_is_not_enforced_for_a_client_given_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DASHSCOPE_REGION=intl + base_url= to the emulator: a Beijing-only model is still sent."""
    monkeypatch.setenv("DASHSCOPE_REGION", "intl")
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=ok_body(["a"]))

    http = httpx.Client(transport=httpx.MockTransport(handle))
    client = DashScopeClient(KEY, base_url="http://127.0.0.1:8123", http_client=http)
    assert client.config.region is None
    res = client.embed_texts(["a"], model="text-embedding-v1")
    assert len(res) == 1
    assert [str(r.url) for r in sent] == [
        "http://127.0.0.1:8123/api/v1/services/embeddings/text-embedding/text-embedding"
    ]
    explicit = DashScopeClient(
        KEY, base_url="http://127.0.0.1:8123", region="intl", http_client=http
    )
    with pytest.raises(InvalidInputError, match="served only in cn-beijing"):
        explicit.embed_texts(["a"], model="text-embedding-v1")
    assert len(sent) == 1
