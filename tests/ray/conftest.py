"""Ray test settings: a loopback-only local cluster that explains itself when it cannot start.

Set before any test module imports Ray (Ray reads these when it is first imported):

* ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray bind its GCS, raylet and agents to
  127.0.0.1 instead of the address it guesses from the default route, so the cluster does not
  depend on how the machine's network interfaces are set up;
* ``RAY_USAGE_STATS_ENABLED=0``: no usage report to send from a machine without a network.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

LOGS = (
    "raylet.out",
    "raylet.err",
    "gcs_server.err",
    "dashboard_agent.err",
    "runtime_env_agent.err",
)


def _log_tails(lines: int = 25) -> str:
    """The ends of the newest session's raylet, GCS and agent logs (for a failed start)."""
    root = Path(os.environ.get("RAY_TMPDIR", "/tmp/ray")) / "session_latest" / "logs"
    parts = []
    for name in LOGS:
        path = root / name
        if path.is_file():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path}\n" + "\n".join(tail))
    return "\n".join(parts) or f"(no Ray logs under {root})"


def start_local_ray(attempts: int = 2) -> None:
    """``ray.init`` a 2-CPU local cluster; on a failed start print Ray's logs and try again.

    Ray gives its raylet a fixed 30 s to register; a starved machine can miss that once. A
    second failure raises, with the logs of both attempts on stderr.
    """
    import ray

    for attempt in range(1, attempts + 1):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            return
        except Exception as exc:
            print(f"ray.init attempt {attempt} failed: {exc!r}\n{_log_tails()}", file=sys.stderr)
            ray.shutdown()
            if attempt == attempts:
                raise
