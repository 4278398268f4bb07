"""The API key never shows: not in str/repr/dumps, logs, validation errors or API errors."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from dashscope_embed import AuthenticationError, InvalidInputError
from dashscope_embed.emulator import Emulator, EmulatorConfig
from langchain_dashscope_embed import DashScopeEmbeddings

from .conftest import EMU_URL, Caller

SECRET = "sk-lc-very-secret-4242"


def test_key_is_a_secretstr_hidden_from_str_repr_and_dumps() -> None:
    """The key is a SecretStr and appears in none of str, repr, model_dump, model_dump_json."""
    emb = DashScopeEmbeddings(api_key=SECRET, base_url=EMU_URL)
    assert isinstance(emb.dashscope_api_key, SecretStr)
    assert emb.dashscope_api_key.get_secret_value() == SECRET
    for text in (
        str(emb),
        repr(emb),
        str(emb.model_dump()),
        emb.model_dump_json(),
        str(emb.model_dump(by_alias=True)),
        repr(emb._rt.client),
        repr(emb.sparse_view()),
    ):
        assert SECRET not in text
    assert "dashscope_api_key" not in emb.model_dump()


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"dimensions": 512}, TypeError),
        ({"timeout": "soon"}, ValidationError),
        ({"sparse_cache_size": -1}, ValidationError),
        ({"dimension": 500}, InvalidInputError),
    ],
)
def test_key_is_absent_from_construction_errors(bad: dict[str, object], error: type) -> None:
    """A rejected construction never echoes the key: not in str, repr, or pydantic's errors()."""
    with pytest.raises(error) as info:
        DashScopeEmbeddings(api_key=SECRET, base_url=EMU_URL, **bad)
    exc = info.value
    details = exc.errors() if isinstance(exc, ValidationError) else vars(exc)
    for text in (str(exc), repr(exc), repr(details), "".join(traceback.format_exception(exc))):
        assert SECRET not in text


def test_key_is_absent_from_debug_logs(
    emulator: Emulator, caplog: pytest.LogCaptureFixture, call: Caller
) -> None:
    """A real call logged at DEBUG (core, httpx, httpcore) never contains the key."""
    emb = DashScopeEmbeddings(
        api_key=SECRET,
        base_url=EMU_URL,
        http_client=httpx.Client(transport=emulator.transport()),
        http_async_client=httpx.AsyncClient(transport=emulator.transport()),
    )
    with caplog.at_level(logging.DEBUG):
        call(emb, "embed_documents", ["log me", "and me"])
    assert [r.status for r in emulator.requests] == [200]
    assert caplog.records, "expected DEBUG records from the request"
    assert SECRET not in caplog.text
    assert all(SECRET not in str(r.args) for r in caplog.records)


def test_key_is_absent_from_auth_errors(
    make_auth_emulator: Callable[[], Emulator], call: Caller
) -> None:
    """A 401 from the emulator raises AuthenticationError whose text and traceback hide the key."""
    emulator = make_auth_emulator()
    emb = DashScopeEmbeddings(
        api_key=SECRET,
        base_url=EMU_URL,
        max_retries=0,
        http_client=httpx.Client(transport=emulator.transport()),
        http_async_client=httpx.AsyncClient(transport=emulator.transport()),
    )
    with pytest.raises(AuthenticationError) as info:
        call(emb, "embed_query", "who am I?")
    assert info.value.status == 401
    assert [r.status for r in emulator.requests] == [401]
    rendered = "".join(traceback.format_exception(info.value))
    for text in (str(info.value), repr(info.value), rendered, str(vars(info.value))):
        assert SECRET not in text


@pytest.fixture
def make_auth_emulator() -> Callable[[], Emulator]:
    """An emulator that accepts only another key, so ours gets a 401."""
    return lambda: Emulator(EmulatorConfig(api_keys=frozenset({"sk-the-only-valid-key"})))
