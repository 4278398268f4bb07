"""Failure paths that must not wedge a client, leak a key, overspend a quota or misroute calls."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from typing import Any

import httpx
import pytest

from dashscope_embed import (
    APIConnectionError,
    APIStatusError,
    AsyncDashScopeClient,
    BadRequestError,
    ConfigurationError,
    ContentModerationError,
    DashScopeClient,
    InvalidInputError,
    get_model,
)
from dashscope_embed._config import resolve_config
from dashscope_embed._engine._throttle import Throttle

from .conftest import KEY, Harness, error, ok_body
from .test_units import FakeClock

MODEL = "text-embedding-v4"


def _in_flight(client: Any) -> int:
    return int(client.throttle.snapshot(MODEL).in_flight)


# --- every admitted request gives its slot back -------------------------------------------


def test_cancelled_async_calls_free_their_slots() -> None:
    """Calls cut off by wait_for (their requests cancelled mid-flight) leave no slot taken, so the
    next call still runs."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)
        return httpx.Response(200, json=ok_body(json.loads(request.content)["input"]["texts"]))

    async def go() -> tuple[int, int]:
        client = AsyncDashScopeClient(
            KEY,
            base_url="http://fake.test",
            max_concurrency=2,
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(slow)),
        )
        for _ in range(2):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(
                    client.embed_texts(["a", "b", "c", "d"], max_batch_size=1), 0.05
                )
        leaked = _in_flight(client)
        res = await asyncio.wait_for(client.embed_texts(["e"]), 5)
        return leaked, len(res)

    leaked, rows = asyncio.run(go())
    assert leaked == 0
    assert rows == 1


def test_a_failing_batch_frees_the_slots_of_its_siblings(harness: Harness) -> None:
    """One batch of four is rejected; every slot is back once the error is raised."""

    def reject_third(body: dict[str, Any]) -> httpx.Response:
        if "t20" in body["input"]["texts"]:
            return error(400, "InvalidParameter", "bad")
        return httpx.Response(200, json=ok_body(body["input"]["texts"]))

    harness.server.script = [reject_third] * 4
    client = harness.make(max_concurrency=4)
    with pytest.raises(BadRequestError):
        harness.embed([f"t{i}" for i in range(40)], client)
    assert _in_flight(client) == 0
    harness.server.script = []
    assert len(harness.embed(["after"], client)) == 1


def test_undecodable_body_is_a_connection_error_and_frees_the_slot() -> None:
    """A body that cannot be decoded (bad gzip) is retried like a dropped answer, then raised as
    APIConnectionError; the slot is free and the next call runs."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= 2:
            return httpx.Response(200, content=b"not gzip", headers={"content-encoding": "gzip"})
        texts = json.loads(request.content)["input"]["texts"]
        body = gzip.compress(httpx.Response(200, json=ok_body(texts)).content)
        return httpx.Response(200, content=body, headers={"content-encoding": "gzip"})

    client = DashScopeClient(
        KEY,
        base_url="http://fake.test",
        max_concurrency=1,
        max_retries=1,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    client._sleep = lambda _s: None
    with pytest.raises(APIConnectionError, match="DecodingError"):
        client.embed_texts(["a"])
    assert _in_flight(client) == 0
    assert len(client.embed_texts(["b"])) == 1


def test_a_raising_progress_callback_frees_the_slot(harness: Harness) -> None:
    """The user's on_progress raising propagates, but does not keep a slot."""
    client = harness.make(max_concurrency=1)

    def boom(_n: int) -> None:
        raise RuntimeError("callback bug")

    with pytest.raises(RuntimeError, match="callback bug"):
        harness.embed(["a"], client, on_progress=boom)
    assert _in_flight(client) == 0
    assert len(harness.embed(["b"], client)) == 1


# --- the key never reaches an error message ------------------------------------------------


@pytest.mark.parametrize(
    "bad_key",
    ["sk-abc\ndef", "sk-abc\u200bdef", "sk-abc def", "sk-abc\x00def", "sk-äbc"],
    ids=["newline", "zero-width space", "space", "nul", "non-ascii"],
)
def test_keys_that_cannot_be_sent_are_refused_without_echoing_them(bad_key: str) -> None:
    with pytest.raises(ConfigurationError, match="printable ASCII") as info:
        resolve_config(api_key=bad_key, env={})
    assert "abc" not in str(info.value)
    assert "abc" not in repr(info.value.args)


def test_surrounding_whitespace_of_a_key_is_still_trimmed() -> None:
    assert resolve_config(api_key="  sk-abc123\n", env={}).api_key == "sk-abc123"


# --- host precedence: argument > environment ------------------------------------------------


def test_region_argument_beats_a_base_url_left_in_the_environment() -> None:
    env = {"DASHSCOPE_HTTP_BASE_URL": "https://dashscope.aliyuncs.com/api/v1"}
    cfg = resolve_config(api_key=KEY, region="ap-southeast-1", env=env)
    assert cfg.base_url == "https://dashscope-intl.aliyuncs.com"
    assert cfg.region == "ap-southeast-1"


def test_base_url_argument_still_beats_everything() -> None:
    env = {"DASHSCOPE_BASE_URL": "https://env.example", "DASHSCOPE_REGION": "intl"}
    cfg = resolve_config(api_key=KEY, region="cn-beijing", base_url="http://arg.example", env=env)
    assert cfg.base_url == "http://arg.example"


# --- regions the model tables do not cover --------------------------------------------------


@pytest.mark.parametrize(
    ("model", "region", "refused"),
    [
        ("text-embedding-v4", "finance", False),
        ("text-embedding-v1", "finance", False),  # a Beijing deployment
        ("text-embedding-v4", "cn-hongkong", False),
        ("text-embedding-v4", "us-east-1", False),
        ("text-embedding-v1", "cn-hongkong", True),  # documented mainland-only
        ("multimodal-embedding-v1", "us-east-1", True),
        ("multimodal-embedding-v1", "finance", False),
        ("text-embedding-v1", "ap-southeast-1", True),
        ("text-embedding-v4", "ap-southeast-1", False),
        ("qwen3.7-text-embedding-flash", "ap-southeast-1", True),
    ],
)
def test_region_rules(model: str, region: str, refused: bool) -> None:
    assert get_model(model).refuses_region(region) is refused


def test_finance_region_client_embeds_with_v4(harness: Harness) -> None:
    """A finance-cloud client is not refused client-side for a model it serves."""
    c = harness.make(base_url=None, region="finance")
    assert c.config.base_url == "https://dashscope-finance.aliyuncs.com"
    assert len(harness.embed(["a"], c)) == 1


def test_mainland_only_model_refused_in_hong_kong(harness: Harness) -> None:
    c = harness.make(base_url=None, region="cn-hongkong")
    with pytest.raises(InvalidInputError, match="served only in cn-beijing"):
        harness.embed(["a"], c, model="text-embedding-v1")
    assert harness.server.requests == []


# --- Retry-After: capped everywhere, honoured for 5xx too ------------------------------------


def test_huge_retry_after_is_capped_for_the_throttle_pause_too(harness: Harness) -> None:
    """A 429 asking for 600 s waits the policy's cap (20 s), not ten minutes."""
    harness.server.script = [
        error(
            429,
            "Throttling.RateQuota",
            "Requests rate limit exceeded",
            headers={"Retry-After": "600"},
        )
    ]
    client = harness.make()
    assert len(harness.embed(["a"], client)) == 1
    assert harness.sleeps[0] == pytest.approx(20.0)
    assert max(harness.sleeps) <= 20.0 + 1e-9


def test_retry_after_on_a_5xx_is_honoured(harness: Harness) -> None:
    harness.server.script = [error(503, "ServiceUnavailable", "busy", headers={"Retry-After": "3"})]
    assert len(harness.embed(["a"])) == 1
    assert harness.sleeps == [pytest.approx(3.0)]


# --- HTTP 200 with a business error code -----------------------------------------------------


def test_http_200_with_a_moderation_code_is_a_moderation_error(harness: Harness) -> None:
    harness.server.script = [
        httpx.Response(
            200,
            json={
                "code": "DataInspectionFailed",
                "message": "Input or output data may contain inappropriate content.",
                "request_id": "r-200",
            },
        )
    ]
    with pytest.raises(ContentModerationError) as info:
        harness.embed(["a"])
    assert (info.value.status, info.value.code, info.value.request_id) == (
        200,
        "DataInspectionFailed",
        "r-200",
    )


def test_http_200_with_a_throttling_code_is_retried(harness: Harness) -> None:
    harness.server.script = [
        httpx.Response(200, json={"code": "Throttling.RateQuota", "message": "slow down"})
    ]
    client = harness.make()
    assert len(harness.embed(["a"], client)) == 1
    assert len(harness.server.requests) == 2
    assert client.stats.throttled == 1


def test_http_200_without_output_or_code_is_a_protocol_error(harness: Harness) -> None:
    harness.server.script = [httpx.Response(200, json={"request_id": "r"})]
    with pytest.raises(APIStatusError) as info:
        harness.embed(["a"])
    assert info.value.code == "ProtocolError"


# --- a tpm budget holds even for requests bigger than one second's worth ---------------------


def test_tpm_budget_holds_for_large_requests() -> None:
    """At 60,000 TPM, 30,000-token requests are admitted about twice a minute, not every
    second (the whole amount is charged; the debt delays what follows)."""
    clock = FakeClock()
    t = Throttle(max_concurrency=100, tpm=60_000, adaptive=False, clock=clock)
    admitted = 0
    start = clock.now
    while clock.now - start < 60.0:
        wait = t.acquire("m", tokens=30_000)
        if wait == 0.0:
            admitted += 1
            t.release("m", "ok")
        else:
            clock.now += wait
    assert admitted <= 3  # the bucket starts with one second's budget


# --- async multimodal: a thread only when local data must be read ---------------------------


def test_async_multimodal_uses_a_thread_only_for_local_images(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from dashscope_embed import Image, _async_client
    from dashscope_embed.emulator import Emulator, EmulatorConfig

    threads: list[str] = []
    real = asyncio.to_thread

    async def spy(func: Any, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(_async_client.asyncio, "to_thread", spy)
    png = tmp_path / "a.png"
    from tests.multimodal.conftest import make_png

    png.write_bytes(make_png("red"))

    async def go() -> None:
        client = AsyncDashScopeClient(
            KEY,
            base_url="http://emulator.test",
            http_client=httpx.AsyncClient(transport=Emulator(EmulatorConfig()).transport()),
        )
        await client.embed_multimodal(["a text", Image("https://example.com/cat.png")])
        assert threads == []
        await client.embed_multimodal(["a text", Image(png)])
        assert len(threads) == 1

    asyncio.run(go())
