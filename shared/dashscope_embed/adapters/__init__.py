"""Framework-neutral support that the LangChain and LlamaIndex adapter packages share.

The adapters declare their fields and translate their framework's hooks; everything else (the
core clients, one throttle per instance, usage, the sparse cache, pickling, construction
checks) lives here once.
"""

from __future__ import annotations

from ._checks import reject_multimodal_model, reject_unknown_arguments
from ._runtime import Runtime, Space

__all__ = ["Runtime", "Space", "reject_multimodal_model", "reject_unknown_arguments"]
