"""The emulator in its own process, recording when each request arrived and was answered.

``python -m benchmarks._timed_server [emulator options]`` takes the emulator's own command line
(``--rpm``, ``--quota-model``, ``--latency``...) and adds ``GET /__bench/timeline``: a JSON
summary measured at the server (first request, last answer, answers by status, tokens, peak
requests in flight). Measuring at the server keeps the numbers the same whichever client path
(core, LangChain, LlamaIndex, Ray) sent the requests.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import replace

from dashscope_embed.emulator import Emulator, EmuRequest, EmuResponse
from dashscope_embed.emulator._cli import BANNER, build_parser, config_from_args
from dashscope_embed.emulator._server import EmulatorServer

TIMELINE = "/__bench/timeline"


class TimedEmulator(Emulator):
    """An emulator that logs ``(arrival, status, answered)`` for every request (0: dropped)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.timeline: list[tuple[float, int, float]] = []
        self._timeline_lock = threading.Lock()
        self.add_route("GET", re.escape(TIMELINE), _summary)

    def handle(self, req: EmuRequest) -> EmuResponse:
        arrived = time.monotonic()
        response = super().handle(req)
        if req.path != TIMELINE:
            status = 0 if response.drop else response.status
            with self._timeline_lock:
                self.timeline.append((arrived, status, arrived + response.delay))
        return response


def summarize(timeline: list[tuple[float, int, float]], tokens: int) -> dict[str, object]:
    """First request to last answer, answers by status, and the peak of requests in flight."""
    if not timeline:
        return {"requests": 0}
    first = min(t for t, _, _ in timeline)
    last = max(done for _, _, done in timeline)
    by_status: dict[str, int] = {}
    for _, status, _ in timeline:
        by_status[str(status)] = by_status.get(str(status), 0) + 1
    edges = sorted([(t, 1) for t, _, _ in timeline] + [(d, -1) for _, _, d in timeline])
    peak = level = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return {
        "requests": len(timeline),
        "first": first,
        "last": last,
        "by_status": by_status,
        "tokens": tokens,
        "peak_in_flight": peak,
    }


def _summary(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    assert isinstance(emu, TimedEmulator)
    with emu._timeline_lock:
        timeline = list(emu.timeline)
    body = json.dumps(summarize(timeline, emu.stats.tokens)).encode()
    return emu.respond(body, "bench")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = replace(config_from_args(args), record=False)  # the timeline is the record
    server = EmulatorServer(TimedEmulator(config), host=args.host, port=args.port)
    server.start()
    print(BANNER.format(url=server.url), flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
