"""One writer per Batch job: an exclusive lock on ``<state>.lock``, held while a job is open.

Two processes resuming the same job would each upload and create the parts the state file does
not list yet, billing those rows twice, and race on the ``.partial`` output. So every
:class:`~._job.BatchJob` that may write takes this lock first and keeps it until
:meth:`~._job.BatchJob.close` (or the process ends: the operating system drops the lock of a
killed process, so a crash never leaves a job locked).

The lock is ``fcntl.flock`` on POSIX and ``msvcrt.locking`` on Windows, on a small side file
(``<state>.lock``; the state file itself is replaced atomically on every save, so it cannot carry
a lock). Both are advisory and per open file: a second :class:`JobLock` on the same job is refused
even in the same process. On a file system without locking support (some network mounts) taking
the lock raises the :class:`OSError` unchanged rather than running unprotected.

No third-party dependency: the standard library covers both platforms.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import IO

from dashscope_embed._errors import DashScopeError

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt
else:
    import fcntl

__all__ = ["JobBusyError", "JobLock", "lock_path"]


class JobBusyError(DashScopeError):
    """Another process (or another open :class:`~._job.BatchJob`) holds the job's lock.

    Nothing was uploaded, created or written: wait for the other run to end, or give
    ``lock_timeout`` seconds to wait for it.
    """


def lock_path(state_path: str | os.PathLike[str]) -> Path:
    """The lock file beside a state file: ``<state>.lock``."""
    p = Path(state_path)
    return p.with_name(p.name + ".lock")


def _try_lock(fh: IO[bytes]) -> bool:
    """Take the lock without blocking; ``False`` if someone else has it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fh: IO[bytes]) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class JobLock:
    """The exclusive lock of one job's state file.

    Args:
        state_path: The job's state file (the lock is ``<state>.lock`` beside it).
        timeout: Seconds to wait for another holder to let go; ``0`` (default) fails at once,
            ``None`` waits for ever.
        poll: Seconds between attempts while waiting.

    Raises:
        JobBusyError: the lock is held elsewhere and ``timeout`` passed.
    """

    def __init__(
        self, state_path: str | os.PathLike[str], *, timeout: float | None = 0, poll: float = 0.1
    ) -> None:
        self.path = lock_path(state_path)
        self._fh: IO[bytes] | None = open(self.path, "a+b")  # noqa: SIM115 - closed in release()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if not _try_lock(self._fh):
                gc.collect()  # a job of this process dropped without close() lets go here
            while not _try_lock(self._fh):
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobBusyError(
                        f"another process is running the batch job of {state_path} (it holds "
                        f"{self.path}); nothing was sent. Wait for it to finish, or let this "
                        "command wait with --lock-timeout SECONDS"
                    )
                time.sleep(poll)
        except BaseException:
            self._fh.close()
            self._fh = None
            raise
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"{os.getpid()}\n".encode())
        self._fh.flush()

    @property
    def held(self) -> bool:
        return self._fh is not None

    def release(self) -> None:
        """Let go (idempotent). The ``.lock`` file stays: deleting it would let a third process
        lock a new file while a second still waits on the old one."""
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            _unlock(fh)
        finally:
            fh.close()

    def __del__(self) -> None:  # a job dropped without close() still lets go
        self.release()
