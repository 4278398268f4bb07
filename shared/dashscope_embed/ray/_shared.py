"""The quota actor's handle: create (or join) the actor, lease from it, read its stats.

See :mod:`dashscope_embed.ray._quota` for how workers lease permits and report outcomes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ._quota import LeasedThrottle
from ._state import (
    DEFAULT_LEASE_TIMEOUT,
    DEFAULT_SHARED_CONCURRENCY,
    QuotaState,
    QuotaStats,
    Report,
)

if TYPE_CHECKING:
    import ray

__all__ = ["SharedQuota"]


class SharedQuota:
    """One quota actor for a whole Ray job; pass this handle to every worker (it pickles).

    Create it in the driver, after ``ray.init()``: a non-detached actor lives as long as the
    process that created it, so the driver keeps it alive for the whole job.

    Args:
        rpm: Requests per minute per model for the account (all workers together), if known.
        tpm: Tokens per minute per model for the account, if known.
        max_concurrency: Requests in flight per model across all workers (a safety bound:
            the shared pacing rate decides).
        initial_concurrency: Starting shared window (grows on success).
        lease_timeout: Seconds after its last contact (lease, report or heartbeat) when a
            worker's permits are taken back: a worker that died holding permits frees them
            within this time.
        name: Actor name; with a name, a second ``SharedQuota(name=...)`` (another driver of the
            same cluster, say) joins the existing actor and its limits instead of creating one.
        namespace: Ray namespace of a named actor.
        detached: Keep the actor after the driver exits (needs ``name``; stop it with
            :meth:`kill`).

    Example:
        >>> quota = SharedQuota(rpm=1_800, tpm=1_200_000)  # doctest: +SKIP
        >>> client = DashScopeClient(throttle=quota.throttle())  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        max_concurrency: int = DEFAULT_SHARED_CONCURRENCY,
        initial_concurrency: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        name: str | None = None,
        namespace: str | None = None,
        detached: bool = False,
    ) -> None:
        import ray

        if detached and not name:
            raise ValueError("a detached quota needs a name (to find it and to kill it later)")
        # Fail here, in the driver, rather than inside the actor.
        QuotaState(rpm=rpm, tpm=tpm, max_concurrency=max_concurrency, lease_timeout=lease_timeout)
        options: dict[str, Any] = {"num_cpus": 0, "max_concurrency": 1}
        if name:
            options.update(name=name, namespace=namespace, get_if_exists=True)
        if detached:
            options["lifetime"] = "detached"
        actor = ray.remote(QuotaState).options(**options)
        self._actor = cast(
            "ray.actor.ActorHandle[QuotaState]",
            actor.remote(
                rpm=rpm,
                tpm=tpm,
                max_concurrency=max_concurrency,
                initial_concurrency=initial_concurrency,
                lease_timeout=lease_timeout,
            ),
        )
        self.lease_timeout = lease_timeout

    @classmethod
    def connect(cls, name: str, *, namespace: str | None = None) -> SharedQuota:
        """Join an existing named quota actor (raises ``ValueError`` if there is none)."""
        import ray

        self = cls.__new__(cls)
        self._actor = ray.get_actor(name, namespace=namespace)
        self.lease_timeout = cast(float, ray.get(self._actor.lease_timeout_seconds.remote()))
        return self

    def throttle(
        self,
        *,
        max_concurrency: int = 8,
        lease_size: int = 8,
        lease_ttl: float = 0.5,
        flush_interval: float = 0.05,
    ) -> LeasedThrottle:
        """A throttle for one worker's client, admitting requests with permits from this quota.

        Its heartbeat runs at a fifth of the quota's ``lease_timeout``.
        """
        return LeasedThrottle(
            self,
            max_concurrency=max_concurrency,
            lease_size=lease_size,
            lease_ttl=lease_ttl,
            flush_interval=flush_interval,
            heartbeat_interval=self.lease_timeout / 5,
        )

    def stats(self) -> QuotaStats:
        """Counters and the shared admission state (one round trip to the actor)."""
        import ray

        return cast(QuotaStats, ray.get(self._actor.stats.remote()))

    def kill(self) -> None:
        """Stop the actor (needed only for a detached quota)."""
        import ray

        ray.kill(self._actor)

    # -- the backend of LeasedThrottle ------------------------------------------------------

    def request_lease(self, model: str, want: int, tokens: int, owner: str) -> object:
        """Ask the actor for permits without waiting for the answer."""
        return self._actor.lease.remote(model, want, tokens, owner)

    def poll_lease(self, ticket: object) -> tuple[int, float] | None:
        """The actor's answer if it has arrived (never blocks)."""
        import ray

        ref: ray.ObjectRef[tuple[int, float]] = ticket  # type: ignore[assignment]
        ready, _ = ray.wait([ref], timeout=0)
        if not ready:
            return None
        answer: tuple[int, float] = ray.get(ready[0])
        return answer

    def report(self, model: str, outcomes: list[Report], owner: str) -> None:
        """Send outcomes to the actor (fire and forget; calls from one worker stay in order)."""
        self._actor.report.remote(model, outcomes, owner)

    def heartbeat(self, owner: str) -> None:
        """Renew a worker's lease (fire and forget)."""
        self._actor.heartbeat.remote(owner)

    def __repr__(self) -> str:
        return f"SharedQuota({self._actor!r})"
