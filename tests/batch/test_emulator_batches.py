"""The emulator's Files and Batches endpoints: shapes, statuses, per-line errors, cancel, lists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from dashscope_embed.emulator import Emulator, text_vector

from .conftest import BATCHES, FILES, FakeClock, make_emulator

V4 = "text-embedding-v4"
FILE_KEYS = [
    "id",
    "object",
    "bytes",
    "created_at",
    "filename",
    "purpose",
    "status",
    "status_details",
]
BATCH_KEYS = [
    "id", "object", "endpoint", "errors", "input_file_id", "completion_window", "status",
    "output_file_id", "error_file_id", "created_at", "in_progress_at", "expires_at",
    "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at",
    "request_counts", "metadata",
]  # fmt: skip


def line(
    cid: str, texts: list[str], *, url: str = "/v1/embeddings", model: str = V4
) -> dict[str, Any]:
    body = {"model": model, "input": texts, "encoding_format": "float", "dimensions": 64}
    return {"custom_id": cid, "method": "POST", "url": url, "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


@pytest.fixture
def speed_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def slow_emu(speed_clock: FakeClock) -> Emulator:
    """Ten lines per second on a clock the test moves."""
    return make_emulator(speed_clock, batch_speed=10.0)


def http_for(emu: Emulator) -> httpx.Client:
    headers = {"Authorization": "Bearer sk-test"}
    return httpx.Client(transport=emu.transport(), base_url="https://e.test", headers=headers)


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with http_for(emu) as c:
        yield c


def upload(http: httpx.Client, data: bytes, *, purpose: str = "batch") -> dict[str, Any]:
    files = {"file": ("input.jsonl", data, "application/jsonl")}
    response = http.post(FILES, data={"purpose": purpose}, files=files)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def create(http: httpx.Client, file_id: str, **extra: Any) -> dict[str, Any]:
    body = {"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"}
    response = http.post(BATCHES, json={**body, **extra})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_upload_get_content_list_delete(http: httpx.Client) -> None:
    """A multipart upload returns the documented file object; content, list and delete follow."""
    data = jsonl([line("1", ["hello"])])
    obj = upload(http, data)
    assert list(obj) == FILE_KEYS
    assert obj["id"].startswith("file-batch-")
    assert len(obj["id"]) == len("file-batch-") + 24
    assert (obj["bytes"], obj["filename"], obj["purpose"], obj["status"]) == (
        len(data), "input.jsonl", "batch", "processed",
    )  # fmt: skip
    assert http.get(f"{FILES}/{obj['id']}").json() == obj
    content = http.get(f"{FILES}/{obj['id']}/content")
    assert content.content == data
    assert "content-type" not in content.headers
    listing = http.get(FILES).json()
    assert [f["id"] for f in listing["data"]] == [obj["id"]]
    assert http.delete(f"{FILES}/{obj['id']}").json() == {
        "id": obj["id"], "object": "file", "deleted": True,
    }  # fmt: skip
    missing = http.get(f"{FILES}/{obj['id']}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NotFound"


def test_upload_rejects_bad_purpose_and_missing_file(http: httpx.Client) -> None:
    """An unknown purpose or a form without a file is a 400 in the OpenAI envelope."""
    bad = http.post(FILES, data={"purpose": "fine-tune"}, files={"file": ("a.jsonl", b"x\n")})
    assert bad.status_code == 400
    assert "purpose" in bad.json()["error"]["message"]
    no_file = http.post(FILES, data={"purpose": "batch"}, files={"other": ("a", b"x")})
    assert no_file.status_code == 400


def test_lifecycle_output_lines_and_vectors(slow_emu: Emulator, speed_clock: FakeClock) -> None:
    """validating → in_progress (at batch_speed) → finalizing → completed, with output lines whose
    body is the compatible embeddings answer for the line's texts."""
    with http_for(slow_emu) as http:
        lines = [line(str(i), [f"text {i}", f"more {i}"]) for i in range(30)]
        file_id = upload(http, jsonl(lines))["id"]
        created = create(http, file_id, metadata={"ds_name": "job"})
        assert list(created) == BATCH_KEYS
        assert created["status"] == "validating"
        assert created["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
        assert created["id"].startswith("batch_")
        bid = created["id"]
        speed_clock.advance(1.5)  # 15 lines at 10 lines/s
        first = http.get(f"{BATCHES}/{bid}").json()
        assert first["status"] == "in_progress"
        assert first["request_counts"] == {"total": 30, "completed": 15, "failed": 0}
        assert first["output_file_id"] is None
        speed_clock.advance(2.0)
        assert http.get(f"{BATCHES}/{bid}").json()["status"] == "finalizing"
        done = http.get(f"{BATCHES}/{bid}").json()
        assert done["status"] == "completed"
        assert done["completed_at"] is not None
        assert done["error_file_id"] is None
        assert done["output_file_id"].startswith("file-batch_output-")
        raw = http.get(f"{FILES}/{done['output_file_id']}/content").content
    out = [json.loads(x) for x in raw.splitlines()]
    assert [o["custom_id"] for o in out] == [str(i) for i in range(30)]
    first_line = out[0]
    assert list(first_line) == ["id", "custom_id", "response", "error"]
    assert first_line["error"] is None
    assert first_line["response"]["status_code"] == 200
    assert first_line["response"]["request_id"] == first_line["id"]
    body = first_line["response"]["body"]
    assert list(body) == ["data", "model", "object", "usage", "id"]
    for item, text in zip(body["data"], ["text 0", "more 0"], strict=True):
        np.testing.assert_allclose(
            item["embedding"], text_vector(V4, text, dimension=64), atol=1e-7
        )


def test_invalid_text_fails_its_line_only(http: httpx.Client) -> None:
    """A line with an empty text goes to the error file with error{code,message}; others succeed."""
    file_id = upload(http, jsonl([line("a", ["fine"]), line("b", ["ok", ""]), line("c", ["x"])]))[
        "id"
    ]
    bid = create(http, file_id)["id"]
    http.get(f"{BATCHES}/{bid}")
    done = http.get(f"{BATCHES}/{bid}").json()
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    errors = [
        json.loads(x)
        for x in http.get(f"{FILES}/{done['error_file_id']}/content").content.splitlines()
    ]
    assert [e["custom_id"] for e in errors] == ["b"]
    assert errors[0]["error"]["code"] == "InvalidParameter"
    assert "Range of input length" in errors[0]["error"]["message"]
    assert errors[0]["response"]["status_code"] == 400
    output = http.get(f"{FILES}/{done['output_file_id']}/content").content.splitlines()
    assert [json.loads(x)["custom_id"] for x in output] == ["a", "c"]


def test_validation_failure_fails_the_batch_with_line_numbers(http: httpx.Client) -> None:
    """A line with an unsupported url, a duplicate custom_id or another model fails the whole
    batch at validation, each error naming its line (as recorded from the real service)."""
    lines = [
        line("1", ["a"]),
        line("2", ["b"], url="/v1/chat/completion"),
        line("1", ["c"]),
        line("4", ["d"], model="text-embedding-v3"),
    ]
    bid = create(http, upload(http, jsonl(lines))["id"])["id"]
    failed = http.get(f"{BATCHES}/{bid}").json()
    assert failed["status"] == "failed"
    assert failed["failed_at"] is not None
    assert failed["in_progress_at"] is None
    errors = failed["errors"]["data"]
    assert [(e["code"], e["line"]) for e in errors] == [
        ("url_not_found", 2), ("duplicate_custom_id", 3), ("mismatched_model", 4),
    ]  # fmt: skip
    assert errors[0]["message"] == (
        "The provided url '/v1/chat/completion' is not supported by the Batch API."
    )
    assert errors[0]["param"] == "url"


def test_cancel_keeps_processed_lines_and_fails_the_rest(
    slow_emu: Emulator, speed_clock: FakeClock
) -> None:
    """cancel → cancelling → cancelled: lines done before the cancel keep their results, the rest
    are in the error file with batch_cancelled."""
    with http_for(slow_emu) as http:
        file_id = upload(http, jsonl([line(str(i), [f"t{i}"]) for i in range(20)]))["id"]
        bid = create(http, file_id)["id"]
        speed_clock.advance(0.5)  # 5 lines
        cancelling = http.post(f"{BATCHES}/{bid}/cancel").json()
        assert cancelling["status"] == "cancelling"
        assert cancelling["cancelling_at"] is not None
        speed_clock.advance(10)
        cancelled = http.get(f"{BATCHES}/{bid}").json()
        assert cancelled["status"] == "cancelled"
        assert cancelled["request_counts"] == {"total": 20, "completed": 5, "failed": 15}
        out = http.get(f"{FILES}/{cancelled['output_file_id']}/content").content.splitlines()
        err = http.get(f"{FILES}/{cancelled['error_file_id']}/content").content.splitlines()
        again = http.post(f"{BATCHES}/{bid}/cancel")
    assert [json.loads(x)["custom_id"] for x in out] == [str(i) for i in range(5)]
    assert {json.loads(x)["error"]["code"] for x in err} == {"batch_cancelled"}
    assert len(err) == 15
    assert again.status_code == 400


def test_expired_after_the_completion_window(speed_clock: FakeClock) -> None:
    """A batch still running past its completion window ends expired, unprocessed lines failed."""
    slow = make_emulator(speed_clock, batch_speed=0.00001)  # 0.86 lines in 24 h
    with http_for(slow) as http:
        bid = create(http, upload(http, jsonl([line("1", ["a"]), line("2", ["b"])]))["id"])["id"]
        speed_clock.advance(25 * 3600)
        expired = http.get(f"{BATCHES}/{bid}").json()
    assert expired["status"] == "expired"
    assert expired["expired_at"] is not None
    assert expired["request_counts"]["failed"] == 2


def test_list_filters_and_empty_page(http: httpx.Client) -> None:
    """GET /batches lists newest first, filters by input_file_ids, answers data null if empty."""
    empty = http.get(BATCHES).json()
    assert empty == {
        "object": "list",
        "data": None,
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    f1 = upload(http, jsonl([line("1", ["a"])]))["id"]
    f2 = upload(http, jsonl([line("1", ["b"])]))["id"]
    b1, b2 = create(http, f1)["id"], create(http, f2)["id"]
    listing = http.get(BATCHES, params={"limit": 1}).json()
    assert [b["id"] for b in listing["data"]] == [b2]
    assert listing["has_more"] is True
    by_file = http.get(BATCHES, params={"input_file_ids": f1}).json()
    assert [b["id"] for b in by_file["data"]] == [b1]


def test_unknown_batch_and_bad_create(http: httpx.Client) -> None:
    """Unknown batch ids are 404; a create with a bad endpoint or window is a 400."""
    assert http.get(f"{BATCHES}/batch_nope").status_code == 404
    file_id = upload(http, jsonl([line("1", ["a"])]))["id"]
    bad_endpoint = http.post(BATCHES, json={"input_file_id": file_id, "endpoint": "/v1/x"})
    assert bad_endpoint.status_code == 400
    bad_window = http.post(
        BATCHES,
        json={"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "2h"},
    )
    assert bad_window.status_code == 400
    missing = http.post(
        BATCHES, json={"input_file_id": "file-batch-x", "endpoint": "/v1/embeddings"}
    )
    assert missing.status_code == 404
