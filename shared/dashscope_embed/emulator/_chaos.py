"""Chaos rules: faults by endpoint, with a probability, an answer and extra latency.

In the spirit of LocalStack's chaos API: a rule says "on *this* endpoint, with probability *p*,
answer *status/code/message* (or drop the connection) after *latency* seconds", optionally only
the first *times* times it fires. Rules are set at start (``EmulatorConfig.chaos``, the CLI's
``--chaos``, the pytest marker) and at run time (:meth:`Emulator.add_chaos`, the admin endpoint
``POST /_emulator/chaos``). A rule with ``status=None`` only slows its endpoint down.

Why per endpoint: real incidents rarely hit everything at once (Files uploads time out while
embeddings answer; the multimodal service throttles alone), and a client's fallbacks can only be
tested if one surface fails while the others work.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from dashscope_embed.emulator._faults import INTERNAL_ERROR, RATE_QUOTA, ScriptedFault

__all__ = ["ENDPOINTS", "ChaosPlan", "ChaosRule", "endpoint_of", "parse_rule"]

#: The endpoint names a rule may target ("*" targets all of them).
ENDPOINTS = ("text", "multimodal", "compat", "files", "batches", "uploads")

_DEFAULTS: dict[int, tuple[str, str]] = {
    429: RATE_QUOTA,
    400: (
        "InvalidParameter",
        "Required parameter(s) missing or invalid, please check the request parameters.",
    ),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),  # invented text
}


def endpoint_of(path: str) -> str:
    """The endpoint name of a request path, or ``""`` for paths no rule can target."""
    if path.startswith("/compatible-mode/v1/files"):
        return "files"
    if path.startswith("/compatible-mode/v1/batches"):
        return "batches"
    if path.startswith("/compatible-mode/"):
        return "compat"
    if path.startswith("/api/v1/services/embeddings/multimodal-embedding/"):
        return "multimodal"
    if path.startswith("/api/v1/services/embeddings/text-embedding/"):
        return "text"
    if path.startswith(("/api/v1/uploads", "/_oss/")):
        return "uploads"
    return ""


@dataclass(frozen=True)
class ChaosRule:
    """One fault rule.

    Attributes:
        endpoint: One of :data:`ENDPOINTS`, or ``"*"`` for every endpoint.
        probability: Chance in ``[0, 1]`` that the rule fires on a matching request (seeded).
        status: HTTP status to answer; ``None`` for a latency-only rule.
        code: Error code; defaults by status (429 → ``Throttling.RateQuota``, 5xx →
            ``InternalError``, 400 → ``InvalidParameter``).
        message: Error message; defaults with the code.
        latency: Extra seconds before the answer when the rule fires.
        drop: Drop the connection instead of answering.
        retry_after: Seconds for a ``Retry-After`` header on the error answer.
        times: Fire at most this many times (``None``: no limit).
    """

    endpoint: str = "*"
    probability: float = 1.0
    status: int | None = 500
    code: str | None = None
    message: str | None = None
    latency: float = 0.0
    drop: bool = False
    retry_after: float | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            allowed = ", ".join(("*", *ENDPOINTS))
            raise ValueError(f"unknown chaos endpoint {self.endpoint!r}; use one of {allowed}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {self.probability!r}")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error status (4xx/5xx), got {self.status!r}")
        if self.latency < 0:
            raise ValueError(f"latency must be >= 0, got {self.latency!r}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be >= 1 or None, got {self.times!r}")

    def matches(self, endpoint: str) -> bool:
        """Whether the rule applies to requests of ``endpoint``."""
        return bool(endpoint) and self.endpoint in ("*", endpoint)

    def fault(self) -> ScriptedFault | None:
        """The answer when the rule fires (``None`` for a latency-only rule)."""
        if self.drop:
            return ScriptedFault(0, "", "", drop=True)
        if self.status is None:
            return None
        default = _DEFAULTS.get(self.status)
        if default is None:
            default = INTERNAL_ERROR if self.status >= 500 else ("BadRequest", "Bad request.")
        code = self.code or default[0]
        message = self.message or (default[1] if code == default[0] else code)
        return ScriptedFault(self.status, code, message, retry_after=self.retry_after)

    def to_json(self) -> dict[str, Any]:
        """The rule as a JSON object (what the admin endpoint lists)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChaosRule:
        """Build a rule from a mapping of its fields.

        Raises:
            ValueError: On an unknown field or an invalid value.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown chaos rule field(s) {unknown}; known: {sorted(names)}")
        return cls(**dict(data))


_NUMBERS = {"probability": float, "latency": float, "retry_after": float}
_INTS = {"status", "times"}


def parse_rule(spec: str) -> ChaosRule:
    """Parse a rule from the CLI: JSON (``{"endpoint": "compat", ...}``) or ``key=value`` pairs.

    ``compat:p=0.3,status=429`` is also accepted: a leading ``NAME:`` sets the endpoint, and
    ``p`` abbreviates ``probability``. ``status=none`` makes a latency-only rule. A ``message``
    must come last in the pair form (it may contain commas).

    Raises:
        ValueError: On a malformed spec, an unknown field or an invalid value.
    """
    text = spec.strip()
    if text.startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a JSON chaos rule must be an object")
        return ChaosRule.from_json(data)
    values: dict[str, Any] = {}
    head, colon, rest = text.partition(":")
    if colon and "=" not in head:
        values["endpoint"], text = head.strip(), rest
    while text:
        pair, _, text = text.partition(",")
        key, eq, value = pair.partition("=")
        key = {"p": "probability"}.get(key.strip(), key.strip())
        if not eq or not key:
            raise ValueError(f"expected key=value in chaos rule {spec!r}, got {pair!r}")
        if key == "message":
            value, text = (value + ("," + text if text else "")), ""
        values[key] = _coerce(key, value.strip())
    return ChaosRule.from_json(values)


def _coerce(key: str, value: str) -> Any:
    if value.lower() in ("none", "null"):
        return None
    if key in _NUMBERS:
        return float(value)
    if key in _INTS:
        return int(value)
    if key == "drop":
        return value.lower() in ("1", "true", "yes", "on")
    return value


class ChaosPlan:
    """The live rules of one emulator and how often each fired (no locking: the app locks).

    Args:
        rules: Initial rules, evaluated in order.
        seed: Seed of the RNG; separate from the random-rate RNG so adding a rule does not shift
            the sequence of ``error_rate`` / ``drop_rate`` faults.
    """

    def __init__(self, rules: Iterable[ChaosRule], seed: int) -> None:
        self.rules: list[ChaosRule] = list(rules)
        self.fired: list[int] = [0] * len(self.rules)
        self.rng = random.Random(seed ^ 0x5EED_C4A05)

    def add(self, rule: ChaosRule) -> None:
        """Append a rule (evaluated after the existing ones)."""
        self.rules.append(rule)
        self.fired.append(0)

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()
        self.fired.clear()

    def draw(self, endpoint: str) -> tuple[ScriptedFault | None, float]:
        """Evaluate the rules for one request of ``endpoint``.

        Returns:
            The fault of the first error rule that fired (or ``None``) and the summed latency of
            every rule that fired up to it.
        """
        latency = 0.0
        for index, rule in enumerate(self.rules):
            if not rule.matches(endpoint):
                continue
            if rule.times is not None and self.fired[index] >= rule.times:
                continue
            if rule.probability < 1.0 and self.rng.random() >= rule.probability:
                continue
            self.fired[index] += 1
            latency += rule.latency
            fault = rule.fault()
            if fault is not None:
                return fault, latency
        return None, latency
