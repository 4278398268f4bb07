"""``DashScopeSettings``: the fields and the two call paths every LlamaIndex adapter shares.

It is mixed in *before* the LlamaIndex base (``class X(DashScopeSettings, BaseEmbedding)``).
Public fields are the options that change the vectors plus the endpoint, so ``to_dict()``
round-trips them; transport knobs are excluded (changing a timeout must not invalidate an
``IngestionPipeline`` cache). Everything is validated at construction and on assignment (see
``_endpoint``) by the core: an empty ``embed_texts`` call checks model, dimension, output_type,
instruct and region and sends nothing. Every hook goes through ``_embed`` / ``_aembed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from llama_index.core.bridge.pydantic import Field, model_validator

from dashscope_embed import (
    EmbeddingResult,
    OutputType,
    TextType,
)
from dashscope_embed.adapters import Runtime, reject_multimodal_model

from ._endpoint import EndpointMixin
from ._support import record

#: ``auto``: queries are sent as ``query`` and texts as ``document`` (the retrieval setup);
#: ``document`` / ``query``: every text is sent with that type (symmetric tasks).
TextTypePolicy = Literal["auto", "document", "query"]
Role = Literal["query", "document"]

#: Texts handed to the core per LlamaIndex batch call (callbacks and progress fire per chunk):
#: VectorStoreIndex inserts 2,048 nodes at a time, so one chunk per insert batch: 205 requests
#: of text-embedding-v4's 10 rows, enough for the rate × latency of a 6,000 RPM quota at 300 ms
#: (100 texts, 10 requests, capped that cell at 0.22 of the quota in the benchmark).
DEFAULT_EMBED_BATCH_SIZE = 2048


class DashScopeSettings(EndpointMixin):
    """Options shared by the dense and sparse adapters (mixed in before the LlamaIndex base)."""

    model_name: str  # redeclared with its default by each concrete class
    text_type: TextTypePolicy = Field(
        default="auto", description="auto: query hooks send 'query', text hooks 'document'."
    )
    query_instruct: str | None = Field(
        default=None, description="Task instruction sent with queries (text-embedding-v4+)."
    )
    region: str | None = Field(default=None, description="Region preset (resolved at init).")
    base_url: str | None = Field(default=None, description="Explicit host (resolved at init).")
    # Transport knobs do not change the vectors: they stay out of to_dict() so that changing a
    # timeout does not invalidate an IngestionPipeline cache.
    workspace: str | None = Field(default=None, exclude=True)
    timeout: float | None = Field(default=None, exclude=True)
    max_retries: int | None = Field(default=None, exclude=True)
    max_concurrency: int | None = Field(default=None, exclude=True)
    rpm: float | None = Field(default=None, exclude=True, description="Known RPM quota.")
    tpm: float | None = Field(default=None, exclude=True, description="Known TPM quota.")

    @model_validator(mode="before")
    @classmethod
    def _default_batch_size(cls, data: Any) -> Any:
        # LlamaIndex calls the batch hook once per embed_batch_size chunk, one chunk after
        # another: a chunk of many requests lets the core run them side by side. The core
        # splits each chunk into requests of the model's row limit, so this is no row limit.
        if isinstance(data, dict) and data.get("embed_batch_size") is None:
            data = {**data, "embed_batch_size": DEFAULT_EMBED_BATCH_SIZE}
        return data

    @model_validator(mode="after")
    def _check_limits(self) -> DashScopeSettings:
        reject_multimodal_model(self.model_name, use="DashScopeMultiModalEmbedding")
        size: int = getattr(self, "embed_batch_size")  # noqa: B009 (declared by the LI base)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"embed_batch_size must be an int >= 1, got {size!r}")
        if self.query_instruct is not None and self.text_type == "document":
            raise ValueError(
                "query_instruct applies to queries only; text_type='document' sends none"
            )
        return self

    def _check_options(self, runtime: Runtime) -> None:
        # An empty call validates model, dimension, output_type, instruct and region; no request.
        runtime.sync.embed_texts([], **self._call_options("query"))

    def _text_type(self, role: Role) -> TextType:
        return role if self.text_type == "auto" else self.text_type

    def _call_options(self, role: Role, output_type: OutputType | None = None) -> dict[str, Any]:
        """The core ``embed_texts`` keywords for a query or a document hook."""
        text_type = self._text_type(role)
        return {
            "model": self.model_name,
            "text_type": text_type,
            "dimension": getattr(self, "dimension", None),
            "output_type": output_type or self._output_type(),
            "instruct": self.query_instruct if text_type == "query" else None,
        }

    def _output_type(self) -> OutputType:
        raise NotImplementedError

    def _embed(
        self, texts: Sequence[str], role: Role, output_type: OutputType | None = None
    ) -> EmbeddingResult:
        opts = self._call_options(role, output_type)
        res = self._rt.sync.embed_texts(list(texts), **opts)
        record(self._rt, res, text_type=opts["text_type"], output_type=opts["output_type"])
        return res

    async def _aembed(
        self, texts: Sequence[str], role: Role, output_type: OutputType | None = None
    ) -> EmbeddingResult:
        opts = self._call_options(role, output_type)
        res = await self._rt.aclient.embed_texts(list(texts), **opts)
        record(self._rt, res, text_type=opts["text_type"], output_type=opts["output_type"])
        return res
