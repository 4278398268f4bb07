"""Run-time fault controls of the :class:`~._app.Emulator`: chaos rules and queued faults.

A mixin: the emulator owns the lock and the plans (rebuilt by ``reset``); these methods only
add to them, under its lock. ``_chaos.py`` and ``_faults.py`` decide what a request gets.
"""

from __future__ import annotations

import threading
from typing import Any

from dashscope_embed.emulator._chaos import ChaosPlan, ChaosRule
from dashscope_embed.emulator._faults import FaultPlan, ScriptedFault

__all__ = ["FaultControls"]


class FaultControls:
    """Chaos rules and scripted faults, added while the emulator runs."""

    _lock: threading.Lock
    _chaos: ChaosPlan
    _faults: FaultPlan

    @property
    def chaos_rules(self) -> list[ChaosRule]:
        """The live chaos rules, in evaluation order (a copy)."""
        with self._lock:
            return list(self._chaos.rules)

    def add_chaos(self, rule: ChaosRule | None = None, **fields: Any) -> ChaosRule:
        """Add a chaos rule at run time: a :class:`ChaosRule`, or its fields as keywords.

        Example: ``emu.add_chaos(endpoint="compat", probability=0.5, status=429)``.

        Returns:
            The rule added.
        """
        if rule is None:
            rule = ChaosRule(**fields)
        elif fields:
            raise TypeError("pass a ChaosRule or its fields, not both")
        with self._lock:
            self._chaos.add(rule)
        return rule

    def clear_chaos(self) -> None:
        """Remove every chaos rule (those from the configuration too)."""
        with self._lock:
            self._chaos.clear()

    def enqueue_fault(
        self,
        status: int,
        code: str,
        message: str,
        *,
        count: int = 1,
        drop: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``count`` authorised requests with this error (or a dropped connection).

        Args:
            status: HTTP status, e.g. 429.
            code: DashScope code, e.g. ``"Throttling.RateQuota"``.
            message: Error message.
            count: How many consecutive requests get it.
            drop: Drop the connection instead of answering.
            retry_after: Seconds for a ``Retry-After`` header.
        """
        fault = ScriptedFault(status, code, message, drop=drop, retry_after=retry_after)
        with self._lock:
            self._faults.enqueue(fault, count)
