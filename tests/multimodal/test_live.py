"""The real service (skipped unless DASHSCOPE_API_KEY is set when pytest starts)."""

from __future__ import annotations

import os

import pytest

from dashscope_embed import DashScopeClient, Image

from .conftest import make_png

#: Captured at import: the autouse fixture in tests/conftest.py clears DASHSCOPE_* per test.
_LIVE = {k: v for k, v in os.environ.items() if k.startswith("DASHSCOPE_") and v}

pytestmark = [
    pytest.mark.live,
    pytest.mark.integration,
    pytest.mark.skipif("DASHSCOPE_API_KEY" not in _LIVE, reason="needs DASHSCOPE_API_KEY"),
]


def test_live_text_and_inline_image() -> None:
    """The real multimodal endpoint embeds a text and an inline PNG into 1152-d vectors."""
    client = DashScopeClient(
        _LIVE["DASHSCOPE_API_KEY"],
        region=_LIVE.get("DASHSCOPE_REGION"),
        base_url=_LIVE.get("DASHSCOPE_BASE_URL"),
        workspace=_LIVE.get("DASHSCOPE_WORKSPACE"),
    )
    res = client.embed_multimodal(["a red square", Image.from_bytes(make_png(None, (255, 0, 0)))])
    assert res.embeddings.shape == (2, 1152)
    assert res.types[0] == "text"
    assert res.usage.requests == 1
    assert res.request_ids[0]
