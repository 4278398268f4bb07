"""Client configuration, resolved once at construction: argument > environment > default.

Environment variables (the names the official SDK and its users already use):

=============================  =====================================================
``DASHSCOPE_API_KEY``          the API key (``sk-…``); keys are region-specific
``DASHSCOPE_REGION``           region preset (also read: ``DASHSCOPE_API_REGION``)
``DASHSCOPE_BASE_URL``         explicit host (also read: ``DASHSCOPE_HTTP_BASE_URL``)
``DASHSCOPE_WORKSPACE``        workspace id (also read: ``DASHSCOPE_WORKSPACE_ID``)
=============================  =====================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ._errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "REGIONS",
    "ClientConfig",
    "resolve_config",
]

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_MAX_CONCURRENCY = 200

#: Region id → shared host (``None``: only workspace hosts exist). §1 of the API reference.
REGIONS: dict[str, str | None] = {
    "cn-beijing": "https://dashscope.aliyuncs.com",
    "ap-southeast-1": "https://dashscope-intl.aliyuncs.com",
    "us-east-1": "https://dashscope-us.aliyuncs.com",
    "cn-hongkong": "https://cn-hongkong.dashscope.aliyuncs.com",
    "finance": "https://dashscope-finance.aliyuncs.com",
    "eu-central-1": None,
    "ap-northeast-1": None,
}
_ALIASES = {
    "beijing": "cn-beijing",
    "cn": "cn-beijing",
    "china": "cn-beijing",
    "intl": "ap-southeast-1",
    "international": "ap-southeast-1",
    "singapore": "ap-southeast-1",
    "us": "us-east-1",
    "virginia": "us-east-1",
    "hongkong": "cn-hongkong",
    "hk": "cn-hongkong",
    "cn-beijing-finance": "finance",
    "frankfurt": "eu-central-1",
    "tokyo": "ap-northeast-1",
}
_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_PATH_SUFFIXES = ("/api/v1", "/compatible-mode/v1")


@dataclass(frozen=True)
class ClientConfig:
    """Resolved settings. ``repr`` never shows the key (it is excluded from the fields' repr)."""

    api_key: str
    base_url: str
    region: str | None
    workspace: str | None
    timeout: float
    max_retries: int
    max_concurrency: int

    def __repr__(self) -> str:
        return (
            f"ClientConfig(base_url={self.base_url!r}, region={self.region!r}, "
            f"workspace={self.workspace!r}, timeout={self.timeout}, "
            f"max_retries={self.max_retries}, max_concurrency={self.max_concurrency}, "
            f"api_key={'set' if self.api_key else 'missing'})"
        )

    @property
    def api_url(self) -> str:
        """Base of the native API (``…/api/v1``)."""
        return f"{self.base_url}/api/v1"

    @property
    def compatible_url(self) -> str:
        """Base of the OpenAI-compatible API (``…/compatible-mode/v1``)."""
        return f"{self.base_url}/compatible-mode/v1"

    def headers(self) -> dict[str, str]:
        """Headers every request carries (the only place the key is read)."""
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "dashscope-embed/0.1",
        }
        if self.workspace:
            headers["X-DashScope-WorkSpace"] = self.workspace
        return headers


def normalize_region(region: str) -> str:
    """Map a region id or alias (``intl``, ``us``…) to a canonical region id."""
    key = region.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in REGIONS:
        allowed = ", ".join(sorted(REGIONS))
        raise ConfigurationError(f"unknown region {region!r}; allowed: {allowed} (or base_url=)")
    return key


def _strip_base(url: str) -> str:
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://", url):
        raise ConfigurationError(f"base_url must start with http:// or https://, got {url!r}")
    for suffix in _PATH_SUFFIXES:
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def _env(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def resolve_config(
    *,
    api_key: str | None = None,
    region: str | None = None,
    base_url: str | None = None,
    workspace: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    max_concurrency: int | None = None,
    env: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Resolve every setting once: argument > environment > default.

    The host is chosen as: ``base_url`` argument > ``region`` argument > ``DASHSCOPE_BASE_URL``
    > ``DASHSCOPE_REGION`` > ``cn-beijing``; a region without a shared host uses the workspace
    host ``https://{workspace}.{region}.maas.aliyuncs.com``. The region (whose model tables the
    client enforces) is the ``region`` argument, else ``None`` when a ``base_url`` argument is
    given (a proxy or the emulator: ``DASHSCOPE_REGION`` is ignored), else the environment's.

    Raises:
        ConfigurationError: no key, an unknown region, a malformed workspace id or base URL, or a
            non-positive limit.
    """
    env = os.environ if env is None else env
    key = api_key if api_key is not None else _env(env, "DASHSCOPE_API_KEY")
    if not key or not key.strip():
        pointed = base_url or (
            None
            if region is not None
            else _env(env, "DASHSCOPE_BASE_URL", "DASHSCOPE_HTTP_BASE_URL")
        )
        if pointed and "aliyuncs.com" not in pointed:  # aimed at the emulator: say what key
            raise ConfigurationError(
                f"no DashScope API key: pass api_key=… or set DASHSCOPE_API_KEY. If {pointed} "
                "is the local emulator, note that it accepts any key that starts with sk- "
                "(for example DASHSCOPE_API_KEY=sk-local)."
            )
        raise ConfigurationError(
            "no DashScope API key: pass api_key=… or set DASHSCOPE_API_KEY. To try things "
            "without a key, run the local emulator (`dashscope-embed emulator`) and point "
            "base_url at it, or use dashscope_embed.emulator in tests."
        )
    key = key.strip()
    if not (key.isascii() and key.isprintable()) or any(ch.isspace() for ch in key):
        # Never echo the key: an HTTP library's error about an illegal header value would.
        raise ConfigurationError(
            "the API key contains a space, a control character or a non-ASCII character (a "
            "line break or an invisible character picked up when pasting it?); DashScope keys "
            "are printable ASCII, e.g. sk-…"
        )
    ws = (
        workspace
        if workspace is not None
        else _env(env, "DASHSCOPE_WORKSPACE", "DASHSCOPE_WORKSPACE_ID")
    )
    if ws is not None and not _WORKSPACE_RE.match(ws):
        raise ConfigurationError(
            f"workspace id {ws!r} is malformed (expected letters, digits, '_' or '-', e.g. ws-…)"
        )
    if region is not None:
        raw_region: str | None = region
    elif base_url is not None:  # an explicit host argument: no region rules unless region= too
        raw_region = None
    else:
        raw_region = _env(env, "DASHSCOPE_REGION", "DASHSCOPE_API_REGION")
    reg = normalize_region(raw_region) if raw_region else None
    if base_url is not None:
        explicit: str | None = base_url
    elif region is not None:  # a region argument beats a base URL left in the environment
        explicit = None
    else:
        explicit = _env(env, "DASHSCOPE_BASE_URL", "DASHSCOPE_HTTP_BASE_URL")
    if explicit:
        url = _strip_base(explicit)
    else:
        reg = reg or "cn-beijing"
        shared = REGIONS[reg]
        if shared is None:
            if not ws:
                raise ConfigurationError(
                    f"region {reg} has no shared host: pass workspace=… (your workspace id) "
                    "so the client can use https://{workspace}.{region}.maas.aliyuncs.com"
                )
            url = f"https://{ws}.{reg}.maas.aliyuncs.com"
        else:
            url = shared
    t = float(timeout) if timeout is not None else DEFAULT_TIMEOUT
    r = int(max_retries) if max_retries is not None else DEFAULT_MAX_RETRIES
    c = int(max_concurrency) if max_concurrency is not None else DEFAULT_MAX_CONCURRENCY
    if t <= 0:
        raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout}")
    if r < 0:
        raise ConfigurationError(f"max_retries must be >= 0, got {max_retries}")
    if c < 1:
        raise ConfigurationError(f"max_concurrency must be >= 1, got {max_concurrency}")
    return ClientConfig(
        api_key=key,
        base_url=url,
        region=reg,
        workspace=ws,
        timeout=t,
        max_retries=r,
        max_concurrency=c,
    )
