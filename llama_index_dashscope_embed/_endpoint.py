"""``EndpointMixin``: how every LlamaIndex adapter here treats its fields and its private runtime.

- Unknown keyword arguments are refused, all of them in one error, each with a close-match hint
  (``model=`` → ``model_name``); pydantic would drop them silently. The error names the
  arguments, never their values.
- Construction resolves the key and endpoint once, pins the resolved endpoint in the fields (so
  ``to_dict()`` records where the vectors came from), and lets the core check the options with an
  empty call that sends nothing.
- Fields stay assignable (LlamaIndex itself sets ``callback_manager``) but validated: a refused
  assignment is undone, and an endpoint or transport field rebuilds the core clients (``region``
  / ``workspace`` re-resolve the host). ``model_copy`` gets clients of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
from llama_index.core.bridge.pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from dashscope_embed.adapters import Runtime, reject_unknown_arguments

from ._support import RuntimeAccessors

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

__all__ = ["EndpointMixin"]

#: Fields the core clients are built from: assigning one rebuilds them.
ENDPOINT: tuple[str, ...] = ("region", "base_url", "workspace", "timeout", "max_retries")
ENDPOINT += ("max_concurrency", "rpm", "tpm")  # rpm, tpm: declared by the text adapters only
_INIT_ONLY = ("api_key", "http_client", "async_http_client")
_RENAMED = {
    "model": "model_name",
    "dimensions": "dimension",
    "instruct": "query_instruct",
    "batch_size": "embed_batch_size",
    "dashscope_api_key": "api_key",
    "http_async_client": "async_http_client",
}


def reject_unknown_fields(cls: type[BaseModel], data: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` naming every unknown argument, each with the closest accepted name."""
    accepted = set(cls.model_fields) | set(_INIT_ONLY)
    # "class_name" is what to_dict()/model_dump() add.
    reject_unknown_arguments(
        cls.__name__, data, accepted, renamed=_RENAMED, ignored=("class_name",)
    )


class EndpointMixin(RuntimeAccessors, BaseModel):
    """Construction, validated assignment and pickling around the private :class:`Runtime`.

    Mixed in before the LlamaIndex base. The concrete class declares the :data:`ENDPOINT` fields
    and implements :meth:`_check_options` (an empty core call with its options).
    """

    model_config = ConfigDict(validate_assignment=True)

    _rt: Runtime = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            reject_unknown_fields(cls, data)
        return data

    def __init__(
        self,
        *,
        api_key: str | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        **data: Any,
    ) -> None:
        """Resolve the key and endpoint once, pin the resolved endpoint, validate the options.

        Args:
            api_key: DashScope key; defaults to ``DASHSCOPE_API_KEY``. Kept private.
            http_client: An ``httpx.Client`` for the sync hooks (tests, proxies); not closed.
            async_http_client: An ``httpx.AsyncClient`` for the async hooks; not closed.
            **data: The public fields.

        Raises:
            TypeError: unknown arguments (all named at once, each with the closest accepted name).
            ConfigurationError: no key, an unknown region or a malformed base URL.
            InvalidInputError: an option the model cannot take (dimension, instruct, region).
            ValueError: ``embed_batch_size`` below 1, or a multimodal model on a text class.
        """
        super().__init__(**data)
        self._connect(Runtime(api_key, self._endpoint(), http_client, async_http_client))

    def __setstate__(self, state: dict[str, Any]) -> None:
        # LlamaIndex's BaseComponent re-runs __init__ from the public fields, which would swap in
        # whatever key the environment holds; restore the pickled runtime (and key) instead.
        BaseModel.__setstate__(self, state)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or self._runtime() is None:
            super().__setattr__(name, value)
            return
        before = dict(self.__dict__)
        try:
            super().__setattr__(name, value)  # validate_assignment: field and model checks
            if name in ENDPOINT:
                reresolve = name in ("region", "workspace")
                self._connect(self._rt.rebuild(self._endpoint(reresolve=reresolve)))
            else:
                self._check_options(self._rt)  # the core's checks, as at construction
        except BaseException:
            self.__dict__.update(before)  # pydantic keeps a value its model checks refused
            raise

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with its own core clients; ``update`` is validated like an assignment."""
        reject_unknown_fields(type(self), update or {})
        copied = super().model_copy(deep=deep)
        copied._rt = self._rt.rebuild(copied._endpoint())  # pydantic's copy would share ours
        for name, value in (update or {}).items():
            setattr(copied, name, value)
        return copied

    def _runtime(self) -> Runtime | None:
        private = getattr(self, "__pydantic_private__", None) or {}
        runtime: Runtime | None = private.get("_rt")
        return runtime

    def _endpoint(self, *, reresolve: bool = False) -> dict[str, Any]:
        options = {name: getattr(self, name, None) for name in ENDPOINT}
        if reresolve:
            options["base_url"] = None  # the pinned host belongs to the previous region
        return options

    def _connect(self, runtime: Runtime) -> None:
        """Pin the runtime's resolved endpoint, check the options on it, then switch to it."""
        c = runtime.sync.config
        self.__dict__.update(region=c.region, base_url=c.base_url, workspace=c.workspace)
        self._check_options(runtime)
        old, self._rt = self._runtime(), runtime
        if old is not None:
            old.sync.close()  # closes only a pool the core created

    def _check_options(self, runtime: Runtime) -> None:
        raise NotImplementedError
