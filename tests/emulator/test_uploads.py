"""Temporary-file uploads (the SDK's file:// path) answered by the emulator, on the raw wire."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from dashscope_embed.emulator import Emulator, image_vector

POLICY = "/api/v1/uploads"
MULTIMODAL = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
MODEL = "tongyi-embedding-vision-plus"
AUTH = {"Authorization": "Bearer sk-test"}
PNG = b"\x89PNG\r\n\x1a\n" + b"fake image bytes"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    emu = Emulator()
    with httpx.Client(transport=emu.transport(), base_url="http://emu.test:8123") as client:
        yield client


def get_policy(http: httpx.Client) -> dict[str, Any]:
    answer = http.get(POLICY, params={"action": "getPolicy", "model": MODEL}, headers=AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert list(body) == ["data", "request_id"]
    return body["data"]  # type: ignore[no-any-return]


def form(policy: dict[str, Any], *, name: str = "cat.png", **override: str) -> dict[str, str]:
    fields = {
        "OSSAccessKeyId": policy["oss_access_key_id"],
        "Signature": policy["signature"],
        "policy": policy["policy"],
        "key": f"{policy['upload_dir']}/{name}",
        "x-oss-object-acl": policy["x_oss_object_acl"],
        "x-oss-forbid-overwrite": policy["x_oss_forbid_overwrite"],
        "success_action_status": "200",
        "x-oss-content-type": "image/png",
    }
    return {**fields, **override}


def upload(http: httpx.Client, policy: dict[str, Any], **override: str) -> httpx.Response:
    host = policy["upload_host"].removeprefix("http://emu.test:8123")
    return http.post(host, data=form(policy, **override), files={"file": ("cat.png", PNG)})


def embed(http: httpx.Client, image: str, *, resolve: bool = True) -> httpx.Response:
    headers = {**AUTH, **({"X-DashScope-OssResourceResolve": "enable"} if resolve else {})}
    body = {"model": MODEL, "input": {"contents": [{"image": image}]}}
    return http.post(MULTIMODAL, json=body, headers=headers)


def test_policy_has_the_recorded_shape_and_points_back_here(http: httpx.Client) -> None:
    """getPolicy answers the recorded keys; upload_host is this emulator (the Host used)."""
    policy = get_policy(http)
    assert list(policy) == [
        "policy", "signature", "upload_dir", "upload_host", "expire_in_seconds",
        "max_file_size_mb", "capacity_limit_mb", "oss_access_key_id", "x_oss_object_acl",
        "x_oss_forbid_overwrite",
    ]  # fmt: skip
    assert policy["upload_host"] == "http://emu.test:8123/_oss/dashscope-file-mgr"
    assert policy["upload_dir"].startswith("dashscope-instant/")
    document = json.loads(base64.b64decode(policy["policy"]))
    assert document["conditions"][0] == ["starts-with", "$key", policy["upload_dir"]]


def test_policy_needs_a_key_and_the_getpolicy_action(http: httpx.Client) -> None:
    """Without a key: 401; another action: 400 (the upload host itself takes no key)."""
    assert http.get(POLICY, params={"action": "getPolicy"}).status_code == 401
    other = http.get(POLICY, params={"action": "list"}, headers=AUTH)
    assert (other.status_code, other.json()["code"]) == (400, "InvalidParameter")


def test_uploaded_image_resolves_to_its_bytes(http: httpx.Client) -> None:
    """After the form post, oss://<key> gets exactly the vector of the same bytes as a data URI."""
    policy = get_policy(http)
    stored = upload(http, policy)
    assert (stored.status_code, stored.content) == (200, b"")
    answer = embed(http, f"oss://{policy['upload_dir']}/cat.png")
    assert answer.status_code == 200, answer.text
    vector = answer.json()["output"]["embeddings"][0]["embedding"]
    data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    np.testing.assert_allclose(vector, image_vector(MODEL, data_uri), atol=1e-7)


@pytest.mark.parametrize(
    ("override", "status", "code"),
    [
        ({"Signature": "forged"}, 403, "SignatureDoesNotMatch"),
        ({"key": "elsewhere/cat.png"}, 403, "AccessDenied"),
    ],
)
def test_upload_is_checked_against_the_policy(
    http: httpx.Client, override: dict[str, str], status: int, code: str
) -> None:
    """A forged signature or a key outside upload_dir is refused with an OSS XML error."""
    answer = upload(http, get_policy(http), **override)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/xml"
    assert f"<Code>{code}</Code>" in answer.text


def test_forbid_overwrite_refuses_a_second_upload(http: httpx.Client) -> None:
    """x-oss-forbid-overwrite: true makes a second post to the same key a 409."""
    policy = get_policy(http)
    assert upload(http, policy).status_code == 200
    assert upload(http, policy).status_code == 409


def test_oss_values_need_the_resolve_header_and_a_stored_object(http: httpx.Client) -> None:
    """oss:// without X-DashScope-OssResourceResolve is a 400 naming the header; an unknown
    object is InvalidURL."""
    policy = get_policy(http)
    upload(http, policy)
    key = f"oss://{policy['upload_dir']}/cat.png"
    missing_header = embed(http, key, resolve=False)
    assert missing_header.status_code == 400
    assert "X-DashScope-OssResourceResolve" in missing_header.json()["message"]
    unknown = embed(http, "oss://dashscope-instant/nothing.png")
    assert (unknown.status_code, unknown.json()["code"]) == (400, "InvalidURL")
