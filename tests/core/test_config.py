"""Configuration is resolved once: argument > environment > default."""

from __future__ import annotations

import pytest

from dashscope_embed import ConfigurationError, DashScopeClient
from dashscope_embed._config import resolve_config

KEY = "sk-config-secret-999"


@pytest.mark.parametrize(
    ("region", "url"),
    [
        (None, "https://dashscope.aliyuncs.com"),
        ("cn-beijing", "https://dashscope.aliyuncs.com"),
        ("intl", "https://dashscope-intl.aliyuncs.com"),
        ("ap-southeast-1", "https://dashscope-intl.aliyuncs.com"),
        ("us-east-1", "https://dashscope-us.aliyuncs.com"),
        ("cn-hongkong", "https://cn-hongkong.dashscope.aliyuncs.com"),
        ("finance", "https://dashscope-finance.aliyuncs.com"),
    ],
)
def test_region_presets(region: str | None, url: str) -> None:
    """Each region preset maps to its documented shared host."""
    cfg = resolve_config(api_key=KEY, region=region, env={})
    assert cfg.base_url == url
    assert cfg.api_url == url + "/api/v1"
    assert cfg.compatible_url == url + "/compatible-mode/v1"


def test_workspace_only_region_uses_workspace_host() -> None:
    """Frankfurt has no shared host: the workspace host is built from the workspace id."""
    cfg = resolve_config(api_key=KEY, region="eu-central-1", workspace="ws-abc", env={})
    assert cfg.base_url == "https://ws-abc.eu-central-1.maas.aliyuncs.com"
    assert cfg.headers()["X-DashScope-WorkSpace"] == "ws-abc"


def test_workspace_only_region_without_workspace_fails() -> None:
    """A workspace-only region without a workspace id is a configuration error."""
    with pytest.raises(ConfigurationError, match="workspace"):
        resolve_config(api_key=KEY, region="eu-central-1", env={})


def test_argument_beats_environment_beats_default() -> None:
    """Arguments win over env variables, which win over defaults."""
    env = {
        "DASHSCOPE_API_KEY": "sk-env",
        "DASHSCOPE_REGION": "intl",
        "DASHSCOPE_WORKSPACE": "ws-env",
    }
    from_env = resolve_config(env=env)
    assert (from_env.api_key, from_env.region, from_env.workspace) == (
        "sk-env",
        "ap-southeast-1",
        "ws-env",
    )
    assert from_env.base_url == "https://dashscope-intl.aliyuncs.com"
    explicit = resolve_config(api_key=KEY, region="us", workspace="ws-arg", env=env)
    assert (explicit.api_key, explicit.region, explicit.workspace) == (KEY, "us-east-1", "ws-arg")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
        ("https://dashscope-intl.aliyuncs.com/api/v1", "https://dashscope-intl.aliyuncs.com"),
        ("https://x.example/compatible-mode/v1/", "https://x.example"),
    ],
)
def test_base_url_normalised(value: str, expected: str) -> None:
    """base_url may be given with or without the /api/v1 or /compatible-mode/v1 suffix."""
    assert resolve_config(api_key=KEY, base_url=value, env={}).base_url == expected


def test_base_url_from_env_wins_over_region() -> None:
    """DASHSCOPE_BASE_URL (or the SDK's DASHSCOPE_HTTP_BASE_URL) overrides the region host."""
    env = {"DASHSCOPE_HTTP_BASE_URL": "http://localhost:9/api/v1", "DASHSCOPE_REGION": "intl"}
    assert resolve_config(api_key=KEY, env=env).base_url == "http://localhost:9"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"api_key": ""}, "no DashScope API key"),
        ({"region": "mars-1"}, "unknown region 'mars-1'; allowed: ap-northeast-1"),
        ({"workspace": "bad id!"}, "malformed"),
        ({"base_url": "ftp://x"}, "http"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_bad_configuration_is_rejected(kwargs: dict, match: str) -> None:
    """Invalid settings raise ConfigurationError naming the setting and allowed values."""
    args = {"api_key": KEY, **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        resolve_config(env={}, **args)


def test_missing_key_error_mentions_env_and_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no key anywhere the client explains how to set one or use the emulator."""
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match=r"DASHSCOPE_API_KEY.*emulator"):
        DashScopeClient()


@pytest.mark.parametrize(
    ("kwargs", "env"),
    [
        ({"base_url": "http://127.0.0.1:8123"}, {}),
        ({}, {"DASHSCOPE_BASE_URL": "http://127.0.0.1:8123"}),
    ],
)
def test_missing_key_with_the_emulator_url_says_which_key_it_accepts(
    kwargs: dict[str, str], env: dict[str, str]
) -> None:
    """Already pointed at a local host, the hint is the sk- key, not "point base_url at it"."""
    with pytest.raises(ConfigurationError) as info:
        resolve_config(env=env, **kwargs)
    text = str(info.value)
    assert "http://127.0.0.1:8123" in text
    assert "accepts any key that starts with sk-" in text
    assert "point base_url at it" not in text


def test_missing_key_with_a_dashscope_host_keeps_the_emulator_suggestion() -> None:
    """A real DashScope host set but no key: the usual message (set a key, or try the emulator)."""
    env = {"DASHSCOPE_BASE_URL": "https://dashscope-intl.aliyuncs.com"}
    with pytest.raises(ConfigurationError, match="point base_url at it"):
        resolve_config(env=env)


def test_two_clients_never_share_keys() -> None:
    """Two clients with two keys keep their own headers (no process-global state)."""
    a = DashScopeClient("sk-aaa", base_url="http://a.test")
    b = DashScopeClient("sk-bbb", base_url="http://b.test")
    assert a._headers["Authorization"] == "Bearer sk-aaa"
    assert b._headers["Authorization"] == "Bearer sk-bbb"
    assert "sk-aaa" not in repr(a)
    assert "sk-aaa" not in repr(a.config)
    a.close()
    b.close()
