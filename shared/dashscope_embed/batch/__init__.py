"""The Batch File API path: resumable, half-price jobs (:class:`BatchJob`), their export, and
cost estimates (:func:`estimate_cost`)."""

from __future__ import annotations

from ._estimate import CostEstimate, estimate_cost, estimate_tokens
from ._lock import JobBusyError

__all__ = ["CostEstimate", "JobBusyError", "estimate_cost", "estimate_tokens"]
