"""Chaos rules: faults by endpoint with probability, answer and latency; set at start or live."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashscope_embed.emulator import ChaosRule, Emulator, EmulatorConfig, EmuRequest
from dashscope_embed.emulator._chaos import endpoint_of, parse_rule

NATIVE = "/api/v1/services/embeddings/text-embedding/text-embedding"
COMPAT = "/compatible-mode/v1/embeddings"
MULTIMODAL = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
AUTH = {"authorization": "Bearer sk-test"}


def native(emu: Emulator, text: str = "a") -> Any:
    body = json.dumps({"model": "text-embedding-v4", "input": {"texts": [text]}}).encode()
    return emu.handle(EmuRequest("POST", NATIVE, dict(AUTH), body))


def compat(emu: Emulator) -> Any:
    body = json.dumps({"model": "text-embedding-v4", "input": "a"}).encode()
    return emu.handle(EmuRequest("POST", COMPAT, dict(AUTH), body))


def test_a_rule_hits_only_its_endpoint() -> None:
    """A compat rule answers compat requests with its error; native text is served normally."""
    emu = Emulator(EmulatorConfig(chaos=(ChaosRule("compat", status=429),)))
    hit, spared = compat(emu), native(emu)
    assert (hit.status, spared.status) == (429, 200)
    assert json.loads(hit.body)["error"]["code"] == "Throttling.RateQuota"
    assert emu.stats.injected == 1


def test_probability_is_seeded_and_roughly_kept() -> None:
    """p=0.3 fires on about 30% of 400 requests, and the same seed fires on the same ones."""

    def statuses(seed: int) -> list[int]:
        emu = Emulator(EmulatorConfig(seed=seed, chaos=(ChaosRule("text", 0.3),)))
        return [native(emu).status for _ in range(400)]

    first = statuses(7)
    assert 80 <= first.count(500) <= 160
    assert set(first) == {200, 500}
    assert statuses(7) == first
    assert statuses(8) != first


def test_times_limits_a_rule_and_latency_only_rules_slow_down() -> None:
    """times=2 fires twice then never; a status=None rule only adds its latency."""
    emu = Emulator()
    emu.add_chaos(endpoint="text", status=503, times=2, latency=0.25)
    emu.add_chaos(endpoint="compat", status=None, latency=1.5)
    answers = [native(emu) for _ in range(3)]
    assert [a.status for a in answers] == [503, 503, 200]
    assert [a.delay for a in answers] == [0.25, 0.25, 0.0]
    assert json.loads(answers[0].body)["code"] == "ServiceUnavailable"
    slow = compat(emu)
    assert (slow.status, slow.delay) == (200, 1.5)


def test_drop_rule_hangs_up_through_the_transport() -> None:
    """A drop rule closes the connection: the httpx transport raises RemoteProtocolError."""
    emu = Emulator(EmulatorConfig(chaos=(ChaosRule("multimodal", drop=True),)))
    with httpx.Client(transport=emu.transport(), base_url="http://e", headers=AUTH) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(MULTIMODAL, json={"model": "tongyi-embedding-vision-plus"})
        assert http.post(NATIVE, json={"model": "text-embedding-v4", "input": {"texts": ["a"]}})
    assert emu.stats.dropped == 1


def test_queued_faults_come_before_chaos_and_bad_keys_get_no_chaos() -> None:
    """enqueue_fault answers first; an unauthorised request is a 401, never a chaos answer."""
    emu = Emulator(EmulatorConfig(chaos=(ChaosRule("*", status=500),)))
    emu.enqueue_fault(429, "Throttling.RateQuota", "slow down")
    assert native(emu).status == 429
    assert native(emu).status == 500
    unauthorised = emu.handle(EmuRequest("POST", NATIVE, {}, b"{}"))
    assert unauthorised.status == 401


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        (NATIVE, "text"),
        (MULTIMODAL, "multimodal"),
        (COMPAT, "compat"),
        ("/compatible-mode/v1/files/file-batch-1/content", "files"),
        ("/compatible-mode/v1/batches/batch_1/cancel", "batches"),
        ("/api/v1/uploads", "uploads"),
        ("/_oss/dashscope-file-mgr", "uploads"),
        ("/elsewhere", ""),
    ],
)
def test_paths_map_to_endpoint_names(path: str, endpoint: str) -> None:
    """Every emulated surface has an endpoint name; other paths are targeted by no rule."""
    assert endpoint_of(path) == endpoint


def test_parse_rule_forms() -> None:
    """CLI specs: NAME: prefix with key=value pairs (message last, commas kept), or JSON."""
    assert parse_rule("compat:p=0.3,status=429") == ChaosRule("compat", 0.3, 429)
    assert parse_rule("endpoint=files,status=none,latency=2") == ChaosRule(
        "files", status=None, latency=2.0
    )
    assert parse_rule("text:status=400,code=Bad,message=a, b, c") == ChaosRule(
        "text", status=400, code="Bad", message="a, b, c"
    )
    assert parse_rule('{"endpoint": "batches", "drop": true, "times": 3}') == ChaosRule(
        "batches", drop=True, times=3
    )


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("video:status=500", "unknown chaos endpoint 'video'"),
        ("text:p=1.5", "probability must be in [0, 1]"),
        ("text:status=200", "HTTP error status"),
        ("text:color=red", "unknown chaos rule field(s) ['color']"),
        ("text:oops", "expected key=value"),
        ("[1]", "expected key=value"),
    ],
)
def test_parse_rule_refuses_bad_specs(spec: str, error: str) -> None:
    """A bad rule is refused with a message that says what is wrong."""
    with pytest.raises(ValueError, match=re.escape(error)):
        parse_rule(spec)


@pytest.fixture
def admin() -> Iterator[tuple[Emulator, httpx.Client]]:
    emu = Emulator()
    with httpx.Client(transport=emu.transport(), base_url="http://e") as http:
        yield emu, http


def test_admin_endpoint_sets_lists_and_clears_rules(admin: tuple[Emulator, httpx.Client]) -> None:
    """POST /_emulator/chaos adds rules (no key needed), GET lists them, DELETE clears them;
    admin calls are neither logged nor counted."""
    emu, http = admin
    added = http.post("/_emulator/chaos", json={"endpoint": "text", "status": 500, "times": 1})
    assert added.status_code == 200
    assert added.json()[0]["endpoint"] == "text"
    assert emu.chaos_rules == [ChaosRule("text", status=500, times=1)]
    assert native(emu).status == 500
    assert native(emu).status == 200
    assert http.get("/_emulator/chaos").json()[0]["times"] == 1
    assert http.delete("/_emulator/chaos").json() == []
    assert emu.chaos_rules == []
    stats = http.get("/_emulator/stats").json()
    assert (stats["requests"], stats["by_status"], stats["injected"]) == (
        2,
        {"200": 1, "500": 1},
        1,
    )
    log = http.get("/_emulator/requests").json()
    assert [row["path"] for row in log] == [NATIVE, NATIVE]
    assert {row["headers"]["authorization"] for row in log} == {"REDACTED"}


def test_admin_endpoint_queues_faults_and_resets(admin: tuple[Emulator, httpx.Client]) -> None:
    """POST /_emulator/faults queues answers; POST /_emulator/reset forgets traffic and files."""
    emu, http = admin
    queued = http.post("/_emulator/faults", json={"status": 429, "code": "Throttling", "count": 2})
    assert queued.json() == {"queued": 2}
    assert [native(emu).status for _ in range(3)] == [429, 429, 200]
    files = {"file": ("a.jsonl", b"{}\n", "application/jsonl")}
    uploaded = http.post(
        "/compatible-mode/v1/files", headers=AUTH, data={"purpose": "batch"}, files=files
    )
    assert uploaded.status_code == 200
    assert http.post("/_emulator/reset").json() == {"reset": True}
    assert emu.stats.requests == 0
    assert http.get("/compatible-mode/v1/files", headers=AUTH).json()["data"] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_emulator/chaos", {"endpoint": "nope"}, 400),
        ("POST", "/_emulator/chaos", [1], 400),
        ("POST", "/_emulator/faults", {"code": "x"}, 400),
        ("GET", "/_emulator/nothing", None, 404),
    ],
)
def test_admin_endpoint_refuses_bad_calls(
    admin: tuple[Emulator, httpx.Client], method: str, path: str, body: Any, status: int
) -> None:
    """Bad admin calls answer 400 with the reason (or 404), and change nothing."""
    emu, http = admin
    answer = http.request(method, path, json=body)
    assert answer.status_code == status
    assert answer.json()["error"]
    assert emu.chaos_rules == []


def test_reset_with_a_config_swaps_it() -> None:
    """reset(config) applies a new configuration (rules, row limits) and forgets the log."""
    emu = Emulator()
    native(emu)
    emu.reset(EmulatorConfig(chaos=(ChaosRule("text", status=500),)))
    assert emu.stats.requests == 0
    assert native(emu).status == 500
    emu.reset(EmulatorConfig())
    assert native(emu).status == 200
