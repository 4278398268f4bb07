"""Issue 16's divergences, closed: Batch validations and file ids, v1/v2 dimension, the catalog."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from dashscope_embed._models import MODELS
from dashscope_embed.emulator import Emulator, EmulatorConfig, text_vector

FILES = "/compatible-mode/v1/files"
BATCHES = "/compatible-mode/v1/batches"
NATIVE = "/api/v1/services/embeddings/text-embedding/text-embedding"
COMPAT = "/compatible-mode/v1/embeddings"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    emu = Emulator(EmulatorConfig(batch_speed=float("inf")))
    headers = {"Authorization": "Bearer sk-test"}
    with httpx.Client(transport=emu.transport(), base_url="https://e.test", headers=headers) as c:
        yield c


def line(
    cid: str, text: str, *, url: str = "/v1/embeddings", model: str = "text-embedding-v4"
) -> dict[str, Any]:
    return {"custom_id": cid, "method": "POST", "url": url, "body": {"model": model, "input": text}}


def run_batch(http: httpx.Client, data: bytes, endpoint: str = "/v1/embeddings") -> dict[str, Any]:
    files = {"file": ("in.jsonl", data, "application/jsonl")}
    uploaded = http.post(FILES, data={"purpose": "batch"}, files=files)
    assert uploaded.status_code == 200, uploaded.text
    created = http.post(
        BATCHES, json={"input_file_id": uploaded.json()["id"], "endpoint": endpoint}
    )
    assert created.status_code == 200, created.text
    assert created.json()["status"] == "validating"
    batch: dict[str, Any] = {}
    for _ in range(5):  # validating → in_progress/failed → finalizing → completed
        batch = http.get(f"{BATCHES}/{created.json()['id']}").json()
        if batch["status"] in ("completed", "failed"):
            break
    return batch


def test_a_file_without_lines_fails_validation(http: httpx.Client) -> None:
    """A file of blank lines is not accepted as a batch of nothing: it fails with empty_file."""
    batch = run_batch(http, b"\n  \n")
    assert batch["status"] == "failed"
    assert [e["code"] for e in batch["errors"]["data"]] == ["empty_file"]
    assert batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}


def test_a_line_url_unlike_the_endpoint_is_url_not_found(http: httpx.Client) -> None:
    """A valid url that is not the batch's endpoint fails validation with the recorded
    url_not_found code and message (no invented code)."""
    data = json.dumps(line("1", "a", url="/v1/chat/completions")).encode()
    batch = run_batch(http, data)
    assert batch["status"] == "failed"
    assert batch["errors"]["data"] == [
        {
            "code": "url_not_found",
            "message": "The provided url '/v1/chat/completions' is not supported by the Batch API.",
            "param": "url",
            "line": 1,
        }
    ]


def test_documented_messages_for_duplicates_models_and_mixtures(http: httpx.Client) -> None:
    """duplicate_custom_id, model_not_found and mismatched_model use the error-code page's text."""
    lines = [
        line("1", "a"),
        line("1", "b"),
        line("3", "c", model="gpt-embed"),
        line("4", "d", model="text-embedding-v3"),
    ]
    batch = run_batch(http, b"\n".join(json.dumps(x).encode() for x in lines))
    messages = {e["code"]: e["message"] for e in batch["errors"]["data"]}
    assert messages == {
        "duplicate_custom_id": "The custom_id '1' for this request is a duplicate of another "
        "request. The custom_id parameter must be unique for each request in a batch.",
        "model_not_found": "The provided model 'gpt-embed' is not supported by the Batch API.",
        "mismatched_model": "The model 'text-embedding-v3' for this request does not match the "
        "rest of the batch. Each batch must contain requests for a single model.",
    }


def test_error_file_has_its_own_id_prefix(http: httpx.Client) -> None:
    """Output files are file-batch_output-<24 hex>, error files file-batch_error-<24 hex>."""
    lines = [line("ok", "fine"), line("bad", "")]
    batch = run_batch(http, b"\n".join(json.dumps(x).encode() for x in lines))
    assert batch["status"] == "completed"
    out, err = batch["output_file_id"], batch["error_file_id"]
    assert out.startswith("file-batch_output-")
    assert len(out) == len("file-batch_output-") + 24
    assert err.startswith("file-batch_error-")
    assert len(err) == len("file-batch_error-") + 24
    error_line = json.loads(http.get(f"{FILES}/{err}/content").content)
    assert error_line["custom_id"] == "bad"
    assert error_line["error"]["code"] == "InvalidParameter"


@pytest.mark.parametrize("model", ["text-embedding-v1", "text-embedding-v2"])
def test_v1_v2_ignore_dimension_and_answer_1536(http: httpx.Client, model: str) -> None:
    """v1/v2 ignore a dimension (native) or dimensions (compatible) and return their fixed
    1536-d vector, the same one as without it."""
    native = http.post(
        NATIVE, json={"model": model, "input": {"texts": ["hi"]}, "parameters": {"dimension": 512}}
    )
    compat = http.post(COMPAT, json={"model": model, "input": ["hi"], "dimensions": 512})
    assert (native.status_code, compat.status_code) == (200, 200)
    expected = text_vector(model, "hi")
    assert expected.shape == (1536,)
    np.testing.assert_allclose(
        native.json()["output"]["embeddings"][0]["embedding"], expected, atol=1e-7
    )
    np.testing.assert_allclose(compat.json()["data"][0]["embedding"], expected, atol=1e-7)


def test_catalog_serves_v4_in_hong_kong() -> None:
    """text-embedding-v4 is listed in Hong Kong with its 10 rows and 8,192 tokens, so neither
    the client nor the emulator refuses it there."""
    spec = MODELS["text-embedding-v4"]
    assert "cn-hongkong" in spec.regions
    assert (spec.max_batch_size, spec.max_tokens) == (10, 8192)
    assert not spec.refuses_region("cn-hongkong")


def test_our_client_still_refuses_a_dimension_for_v2() -> None:
    """The client refuses dimension=512 for v2 before sending: a user asking must know."""
    from dashscope_embed import DashScopeClient, DashScopeError

    emu = Emulator()
    http = httpx.Client(transport=emu.transport())
    client = DashScopeClient("sk-test", base_url="http://e.test", http_client=http)
    with client, pytest.raises(DashScopeError, match="dimension"):
        client.embed_texts(["hi"], model="text-embedding-v2", dimension=512)
    assert emu.stats.requests == 0
