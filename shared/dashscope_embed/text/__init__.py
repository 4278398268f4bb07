"""Text embeddings: the options of a call, their checks, and the job that batches them."""

from __future__ import annotations

from ._job import TextJob, text_job
from ._options import TextOptions, describe_options, validate_text_options, validate_texts

__all__ = [
    "TextJob",
    "TextOptions",
    "describe_options",
    "text_job",
    "validate_text_options",
    "validate_texts",
]
