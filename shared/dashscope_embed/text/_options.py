"""The options of a text-embedding call and the checks made before any request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dashscope_embed._engine._job import check_dimension
from dashscope_embed._errors import InvalidInputError
from dashscope_embed._models import ModelSpec

__all__ = [
    "OUTPUT_TYPES",
    "TEXT_TYPES",
    "TextOptions",
    "describe_options",
    "validate_text_options",
    "validate_texts",
]

TEXT_TYPES = ("query", "document")
OUTPUT_TYPES = ("dense", "sparse", "dense&sparse")


@dataclass(frozen=True)
class TextOptions:
    """The per-call knobs that reach the wire."""

    model: str
    text_type: str | None = "document"
    dimension: int | None = None
    output_type: str = "dense"
    instruct: str | None = None

    @property
    def want_dense(self) -> bool:
        return self.output_type != "sparse"

    @property
    def want_sparse(self) -> bool:
        return self.output_type != "dense"


def validate_text_options(opts: TextOptions, spec: ModelSpec, *, region: str | None) -> None:
    """Reject an option the model cannot take, naming the allowed values.

    Raises:
        InvalidInputError: with ``rule`` set to the option's name.
    """
    if opts.text_type is not None and opts.text_type not in TEXT_TYPES:
        raise InvalidInputError(
            f"text_type must be one of {TEXT_TYPES}, got {opts.text_type!r}", rule="text_type"
        )
    if opts.output_type not in OUTPUT_TYPES:
        raise InvalidInputError(
            f"output_type must be one of {OUTPUT_TYPES}, got {opts.output_type!r}",
            rule="output_type",
        )
    if opts.want_sparse and spec.known and not spec.supports_sparse:
        raise InvalidInputError(
            f"{spec.name} has no sparse output; output_type {opts.output_type!r} needs one of: "
            "text-embedding-v3, text-embedding-v4, qwen3.7-text-embedding(-flash)",
            rule="output_type",
        )
    check_dimension(opts.dimension, spec)
    if opts.instruct is not None:
        if not isinstance(opts.instruct, str) or not opts.instruct.strip():
            raise InvalidInputError("instruct must be a non-empty string", rule="instruct")
        if opts.text_type != "query":
            raise InvalidInputError(
                "instruct only applies to queries: use text_type='query' (documents are "
                "embedded without an instruction)",
                rule="instruct",
            )
        if spec.known and not spec.supports_instruct:
            raise InvalidInputError(
                f"{spec.name} ignores instruct; models that take it: text-embedding-v4, "
                "qwen3.7-text-embedding(-flash)",
                rule="instruct",
            )
    if spec.refuses_region(region):
        raise InvalidInputError(
            f"{spec.name} is served only in {', '.join(spec.regions)}; this client is set to "
            f"region {region!r}",
            rule="region",
        )


def validate_texts(texts: Sequence[str]) -> list[str]:
    """Check every text before any request; nothing is dropped, stripped or replaced.

    Raises:
        InvalidInputError: a bare string instead of a list, a non-string item, or an empty /
            whitespace-only text, naming its index.
    """
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError(
            "texts must be a list of strings, got a single string: wrap it as [text]",
            rule="not_a_list",
        )
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"input {i} is {type(text).__name__}, not str: every input must be a string",
                index=i,
                rule="not_a_string",
            )
        if not text.strip():
            raise InvalidInputError(
                f"input {i} is empty or whitespace only; DashScope rejects it with HTTP 400 "
                "(remove it or replace it yourself, keeping your own alignment)",
                index=i,
                rule="empty_text",
            )
    return out


def describe_options(opts: TextOptions) -> dict[str, Any]:
    """The options as a plain dict (for logs and cache keys)."""
    return {
        "model": opts.model,
        "text_type": opts.text_type,
        "dimension": opts.dimension,
        "output_type": opts.output_type,
        "instruct": opts.instruct,
    }
