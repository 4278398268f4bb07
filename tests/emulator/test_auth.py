"""Authentication: Bearer and X-DashScope-ApiKey headers, key restriction, workspace header."""

from __future__ import annotations

import httpx
import pytest

from dashscope_embed.emulator import Emulator, EmulatorConfig

PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
BODY = {"model": "text-embedding-v4", "input": {"texts": ["hi"]}}
INVALID_KEY = {"code": "InvalidApiKey", "message": "Invalid API-key provided."}


def post(emu: Emulator, headers: dict[str, str], body: object = BODY) -> httpx.Response:
    with httpx.Client(transport=emu.transport(), base_url="http://e") as http:
        return http.post(PATH, json=body, headers=headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-dashscope-key"},
        {"Authorization": "Basic sk-abc"},
        {"Authorization": "Bearer "},
        {"X-DashScope-ApiKey": "nope"},
    ],
    ids=["none", "bad bearer", "wrong scheme", "empty bearer", "bad header key"],
)
def test_missing_or_rejected_key_is_401_invalid_api_key(headers: dict[str, str]) -> None:
    """Without an acceptable key the native answer is 401 InvalidApiKey with a request id."""
    response = post(Emulator(), headers)
    assert response.status_code == 401
    body = response.json()
    assert list(body) == ["code", "message", "request_id"]
    assert {k: body[k] for k in ("code", "message")} == INVALID_KEY
    assert response.headers["x-request-id"] == body["request_id"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk-anything"},
        {"authorization": "bearer sk-lowercase"},
        {"X-DashScope-ApiKey": "sk-from-header"},
    ],
)
def test_any_sk_key_is_accepted_by_default(headers: dict[str, str]) -> None:
    """By default any key starting with sk- works, from Authorization or X-DashScope-ApiKey."""
    assert post(Emulator(), headers).status_code == 200


def test_api_keys_restricts_accepted_keys() -> None:
    """With api_keys set only those keys work, even ones not starting with sk-."""
    emu = Emulator(EmulatorConfig(api_keys=frozenset({"sk-good", "custom-key"})))
    assert post(emu, {"Authorization": "Bearer sk-other"}).status_code == 401
    assert post(emu, {"Authorization": "Bearer sk-good"}).status_code == 200
    assert post(emu, {"X-DashScope-ApiKey": "custom-key"}).status_code == 200


def test_auth_comes_before_validation_and_faults() -> None:
    """An unauthorised request gets 401 even with a bad body, and does not use a queued fault."""
    emu = Emulator()
    emu.enqueue_fault(503, "ModelUnavailable", "Model is unavailable, please try again later.")
    assert post(emu, {}, body={"garbage": True}).status_code == 401
    served = post(emu, {"Authorization": "Bearer sk-1"})
    assert served.status_code == 503
    assert served.json()["code"] == "ModelUnavailable"


def test_workspace_header_is_accepted_and_recorded_and_keys_are_redacted() -> None:
    """X-DashScope-WorkSpace is logged as sent; key headers are logged as REDACTED."""
    emu = Emulator()
    headers = {"Authorization": "Bearer sk-secret-1", "X-DashScope-WorkSpace": "ws-42"}
    assert post(emu, headers).status_code == 200
    assert post(emu, {"X-DashScope-ApiKey": "sk-secret-2"}).status_code == 200
    first, second = emu.requests
    assert first.headers["x-dashscope-workspace"] == "ws-42"
    assert first.headers["authorization"] == "REDACTED"
    assert second.headers["x-dashscope-apikey"] == "REDACTED"
    assert "sk-secret" not in repr(emu.requests)
    assert first.used_key("sk-secret-1")
    assert not first.used_key("sk-secret-2")
    assert second.used_key("sk-secret-2")
