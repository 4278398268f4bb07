"""Quotas on a fake clock, seeded random faults, scripted faults, latency, stats and routing."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from dashscope_embed.emulator import Emulator, EmulatorConfig, EmuRequest, EmuResponse, _transport

PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
AUTH = {"Authorization": "Bearer sk-test"}
RPM = ("Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
TPM = ("Throttling.AllocationQuota", "Allocated quota exceeded, please increase your quota limit.")
INTERNAL = (
    "InternalError",
    "An internal error has occured, please try again later or contact service support.",
)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(texts: list[str], model: str = "text-embedding-v4") -> EmuRequest:
    body = json.dumps({"model": model, "input": {"texts": texts}})
    return EmuRequest("POST", PATH, dict(AUTH), body.encode())


def answer(
    emu: Emulator, texts: list[str] | None = None, model: str = "text-embedding-v4"
) -> tuple[int, Any]:
    """Status and parsed body of one native request handled in-process."""
    response = emu.handle(request(texts or ["one"], model))
    return response.status, (json.loads(response.body) if response.body else None)


def test_rpm_bucket_throttles_per_second_and_refills() -> None:
    """rpm=120 allows a 2-request burst, then 429 RateQuota, then one more after 0.5 s."""
    clock = FakeClock()
    emu = Emulator(EmulatorConfig(rpm=120), clock=clock)
    assert [answer(emu)[0] for _ in range(2)] == [200, 200]
    status, body = answer(emu)
    assert status == 429
    assert (body["code"], body["message"]) == RPM
    clock.now += 0.5
    assert answer(emu)[0] == 200
    assert answer(emu)[0] == 429
    assert emu.stats.throttled == 2


def test_refused_requests_do_not_consume_quota() -> None:
    """A 429 costs nothing: at rpm=60 a request refused at t=0.5 does not delay the one at t=1."""
    clock = FakeClock()
    emu = Emulator(EmulatorConfig(rpm=60), clock=clock)
    assert answer(emu)[0] == 200
    clock.now += 0.5
    assert answer(emu)[0] == 429
    clock.now += 0.5
    assert answer(emu)[0] == 200


def test_tpm_bucket_throttles_tokens() -> None:
    """tpm=600 holds 10 tokens: 8 pass, 8 more get 429 AllocationQuota, 0.6 s later they pass."""
    clock = FakeClock()
    emu = Emulator(EmulatorConfig(tpm=600), clock=clock)
    eight = ["abcdefgh " * 4]  # 4 runs of 8 letters = 8 tokens
    assert answer(emu, eight)[0] == 200
    status, body = answer(emu, eight)
    assert status == 429
    assert (body["code"], body["message"]) == TPM
    clock.now += 0.6
    assert answer(emu, eight)[0] == 200
    assert emu.stats.tokens == 16


def test_a_request_bigger_than_a_second_of_tpm_waits_until_it_fits() -> None:
    """At tpm=60 (1 token/s) a 5-token request is refused at once and admitted after 4 s."""
    clock = FakeClock()
    emu = Emulator(EmulatorConfig(tpm=60), clock=clock)
    five = ["aaaa bbbb cccc dddd eeee"]
    assert answer(emu, five)[0] == 429
    clock.now += 4.0
    assert answer(emu, five)[0] == 200


def test_tpm_refusal_does_not_charge_rpm_and_models_are_separate() -> None:
    """A TPM refusal leaves the RPM bucket untouched; another model has its own buckets."""
    clock = FakeClock()
    emu = Emulator(EmulatorConfig(rpm=60, tpm=60), clock=clock)
    assert answer(emu, ["aaaa bbbb cccc"])[1]["code"] == TPM[0]
    assert answer(emu, ["a"])[0] == 200  # the single RPM token was still there
    assert answer(emu, ["a"])[1]["code"] == RPM[0]
    assert answer(emu, ["a"], model="text-embedding-v3")[0] == 200


def test_invalid_requests_do_not_consume_quota() -> None:
    """A 400 is not charged: at rpm=60 a valid request right after one still passes."""
    emu = Emulator(EmulatorConfig(rpm=60), clock=FakeClock())
    assert answer(emu, [""])[0] == 400
    assert answer(emu)[0] == 200


def test_retry_after_header_on_429_when_configured() -> None:
    """retry_after adds Retry-After to quota 429s; without it there is no such header."""
    emu = Emulator(EmulatorConfig(rpm=60, retry_after=2), clock=FakeClock())
    emu.handle(request(["a"]))
    assert emu.handle(request(["a"])).headers["retry-after"] == "2"
    plain = Emulator(EmulatorConfig(rpm=60), clock=FakeClock())
    plain.handle(request(["a"]))
    assert "retry-after" not in plain.handle(request(["a"])).headers


def test_error_rate_is_seeded_and_answers_internal_error() -> None:
    """error_rate=0.3 gives the same 500 pattern for the same seed, with the verbatim body."""

    def pattern(seed: int) -> list[int]:
        emu = Emulator(EmulatorConfig(error_rate=0.3, seed=seed))
        return [emu.handle(request(["x"])).status for _ in range(60)]

    first = pattern(7)
    assert first == pattern(7) != pattern(8)
    assert set(first) == {200, 500}
    assert 8 <= first.count(500) <= 30
    status, body = answer(Emulator(EmulatorConfig(error_rate=1.0)))
    assert status == 500
    assert (body["code"], body["message"]) == INTERNAL


def test_drop_rate_drops_connections_deterministically() -> None:
    """drop_rate marks responses drop=True (seeded); the transport raises RemoteProtocolError."""

    def pattern() -> list[bool]:
        emu = Emulator(EmulatorConfig(drop_rate=0.25, seed=3))
        return [emu.handle(request(["x"])).drop for _ in range(40)]

    drops = pattern()
    assert drops == pattern()
    assert 3 <= sum(drops) <= 20
    emu = Emulator(EmulatorConfig(drop_rate=1.0))
    with (
        httpx.Client(transport=emu.transport(), base_url="http://e", headers=AUTH) as http,
        pytest.raises(httpx.RemoteProtocolError, match="without sending a response"),
    ):
        http.post(PATH, json={"model": "text-embedding-v4", "input": {"texts": ["x"]}})
    assert emu.stats.dropped == 1
    assert emu.stats.by_status == {}
    assert emu.requests[0].status == 0


def test_enqueue_fault_answers_the_next_requests_then_recovers() -> None:
    """Scripted faults answer the next `count` requests (with Retry-After), then service resumes."""
    emu = Emulator()
    emu.enqueue_fault(429, "Throttling", "Requests throttling triggered.", count=2, retry_after=1.5)
    emu.enqueue_fault(0, "", "", drop=True)
    first, second = emu.handle(request(["a"])), emu.handle(request(["a"]))
    for response in (first, second):
        assert response.status == 429
        assert response.headers["retry-after"] == "1.5"
    assert emu.handle(request(["a"])).drop
    assert emu.handle(request(["a"])).status == 200
    compat = emu.handle(EmuRequest("POST", "/compatible-mode/v1/embeddings", dict(AUTH), b"{}"))
    assert compat.status == 400  # no more faults: normal validation
    emu.enqueue_fault(503, "ModelUnavailable", "Model is unavailable, please try again later.")
    compat = emu.handle(EmuRequest("POST", "/compatible-mode/v1/embeddings", dict(AUTH), b"{}"))
    assert compat.status == 503
    assert b'"error":{"message":"Model is unavailable' in compat.body


def test_latency_and_jitter_are_reported_as_delay() -> None:
    """The core never sleeps: it returns latency (+ seeded jitter) as delay for the shell."""
    assert Emulator(EmulatorConfig(latency=0.25)).handle(request(["a"])).delay == 0.25
    delays = [
        Emulator(EmulatorConfig(latency=0.1, latency_jitter=0.05, seed=1))
        .handle(request(["a"]))
        .delay
        for _ in range(2)
    ]
    assert delays[0] == delays[1]
    assert 0.1 <= delays[0] <= 0.15


def test_transports_sleep_the_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sync transport waits with time.sleep; the async one with asyncio.sleep."""
    slept: list[float] = []
    monkeypatch.setattr(_transport.time, "sleep", slept.append)
    emu = Emulator(EmulatorConfig(latency=0.4))
    with httpx.Client(transport=emu.transport(), base_url="http://e", headers=AUTH) as http:
        assert (
            http.post(
                PATH, json={"model": "text-embedding-v4", "input": {"texts": ["a"]}}
            ).status_code
            == 200
        )
    assert slept == [0.4]


async def test_async_transport_awaits_the_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The async transport awaits asyncio.sleep(delay) and raises on a dropped connection."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(_transport.asyncio, "sleep", fake_sleep)
    emu = Emulator(EmulatorConfig(latency=0.3))
    emu.enqueue_fault(0, "", "", drop=True)
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url="http://e", headers=AUTH
    ) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(PATH, json={"model": "text-embedding-v4", "input": {"texts": ["a"]}})
        ok = await client.post(PATH, json={"model": "text-embedding-v4", "input": {"texts": ["a"]}})
    assert ok.status_code == 200
    assert slept == [0.3, 0.3]


def test_stats_and_request_log() -> None:
    """Stats count requests, statuses, tokens and rows; the log keeps parsed JSON and statuses."""
    emu = Emulator(EmulatorConfig(max_log=3))
    emu.handle(request(["hello world", "abc"]))
    emu.handle(request([""]))
    emu.handle(EmuRequest("POST", PATH, {}, b"not json"))
    stats = emu.stats
    assert (stats.requests, stats.by_status, stats.tokens, stats.rows) == (
        3,
        {200: 1, 400: 1, 401: 1},
        5,
        2,
    )
    log = emu.requests
    assert [r.status for r in log] == [200, 400, 401]
    assert log[0].json == {"model": "text-embedding-v4", "input": {"texts": ["hello world", "abc"]}}
    assert log[2].json is None
    assert log[0].method == "POST"
    assert log[0].path == PATH
    emu.handle(request(["more"]))
    assert [r.status for r in emu.requests] == [400, 401, 200]  # max_log keeps the newest
    emu.reset_stats()
    assert emu.stats.requests == 0
    assert emu.requests == []
    quiet = Emulator(EmulatorConfig(record=False))
    quiet.handle(request(["a"]))
    assert quiet.requests == []
    assert quiet.stats.requests == 1


def test_add_route_registers_a_new_endpoint_that_takes_precedence() -> None:
    """A handler added with add_route is called with the path match; it may override a default."""
    emu = Emulator()

    def task(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
        return emu.respond(b'{"task": "%s"}' % match["id"].encode(), "rid")

    emu.add_route("GET", r"/api/v1/tasks/(?P<id>[\w-]+)", task)
    assert (
        emu.handle(EmuRequest("GET", "/api/v1/tasks/abc-1", dict(AUTH))).body
        == b'{"task": "abc-1"}'
    )
    emu.add_route(
        "POST", re.compile(re.escape(PATH)), lambda e, r, m: e.respond(b"{}", "x", status=202)
    )
    assert emu.handle(request(["a"])).status == 202


def test_a_crashing_handler_becomes_a_500_answer(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in a handler is logged and answered 500 InternalError, not raised."""
    emu = Emulator()

    def broken(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
        raise RuntimeError("boom")

    emu.add_route("POST", "/boom", broken)
    response = emu.handle(EmuRequest("POST", "/boom", dict(AUTH)))
    assert response.status == 500
    assert b'"code":"InternalError"' in response.body
    assert "boom" in caplog.text
