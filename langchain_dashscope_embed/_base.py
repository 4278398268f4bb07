"""Fields and construction shared by the LangChain classes (text and multimodal)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from dashscope_embed import DashScopeClient, Usage
from dashscope_embed.adapters import Runtime, reject_unknown_arguments

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

try:
    from langchain_core.utils import secret_from_env
except ImportError as exc:  # pragma: no cover - depends on the environment
    _HINT = 'langchain-core is missing: pip install "dashscope-embed[langchain]"'
    raise ImportError(_HINT) from exc

__all__ = ["DashScopeFields"]

_RENAMED = {"dimensions": "dimension", "model_name": "model", "instruct": "query_instruct"}


class DashScopeFields(BaseModel):
    """Connection and vector options common to every LangChain class of this package.

    Frozen: the core client is built from these fields once, at construction, so a later change
    would silently do nothing. ``model_copy(update=...)``, ``copy`` and ``deepcopy`` therefore
    build a new, validated instance with its own clients, usage and sparse cache (an injected
    ``http_client`` is shared); a pickled copy keeps the key and options, not injected clients.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        arbitrary_types_allowed=True,
        hide_input_in_errors=True,  # a validation error must never echo the key back
    )

    dashscope_api_key: SecretStr | None = Field(
        default_factory=secret_from_env("DASHSCOPE_API_KEY", default=None),
        alias="api_key",
        exclude=True,
        repr=False,
    )
    dimension: int | None = None
    query_instruct: str | None = None
    region: str | None = None
    base_url: str | None = None
    workspace: str | None = None
    timeout: float | None = None
    max_retries: int | None = None
    max_concurrency: int | None = None
    rpm: float | None = None  # your quota, if known: paced to it from the first request
    tpm: float | None = None
    max_batch_size: int | None = None
    http_client: httpx.Client | None = Field(default=None, exclude=True, repr=False)
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)

    _rt: Runtime = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _explain_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            reject_unknown_arguments(
                cls.__name__,
                data,
                set(cls.model_fields) | {"api_key"},
                renamed=_RENAMED,
                noun="field",
            )
        return data

    def _build_runtime(
        self, validate: Callable[[DashScopeClient], object], *, sparse_cache_size: int = 0
    ) -> None:
        """Build the core clients once; ``validate`` checks the options without sending."""
        key = self.dashscope_api_key.get_secret_value() if self.dashscope_api_key else None
        conf: dict[str, Any] = {
            "region": self.region,
            "base_url": self.base_url,
            "workspace": self.workspace,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "max_concurrency": self.max_concurrency,
            "rpm": self.rpm,
            "tpm": self.tpm,
        }
        self._rt = Runtime(
            key,
            conf,
            self.http_client,
            self.http_async_client,
            sparse_cache_size=sparse_cache_size,
        )
        validate(self._rt.client)

    @property
    def usage(self) -> Usage:
        """Usage summed over every call of this instance (tokens, image tokens, requests)."""
        return self._rt.usage

    @property
    def last_usage(self) -> Usage:
        """Usage of the most recent call that finished."""
        return self._rt.last_usage or Usage()

    def reset_usage(self) -> None:
        """Set :attr:`usage` and :attr:`last_usage` back to zero."""
        self._rt.reset_usage()

    def close(self) -> None:
        """Close the sync connection pool (a client passed as ``http_client`` stays open)."""
        self._rt.client.close()

    async def aclose(self) -> None:
        """Close the running loop's async connection pool now (it also closes at loop end)."""
        await self._rt.aclose()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A new instance from these fields plus ``update``, validated, with a runtime of its own.

        Pydantic's copy would share the core clients, so a changed ``base_url``, ``region`` or
        ``timeout`` would be ignored, usage would be summed across copies and the sparse cache
        would be shared. ``deep`` changes nothing: every field is immutable or a shared resource.
        """
        data: dict[str, Any] = {name: getattr(self, name) for name in type(self).model_fields}
        if update and "api_key" in update:
            del data["dashscope_api_key"]
        return type(self)(**{**data, **(update or {})})

    def __copy__(self) -> Self:
        return self.model_copy()

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        return self.model_copy()

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        # Injected httpx clients hold locks and sockets: an unpickled copy opens its own pools.
        state["__dict__"] = {**state["__dict__"], "http_client": None, "http_async_client": None}
        return state
