"""Text embedding endpoints: native and OpenAI-compatible (``dashscope-api.md`` §2 and §4).

Validation follows the real service's order of concerns and its verbatim messages (§2.6), and the
whole batch is rejected on the first bad text, as the real service does. Messages the doc did not
record (marked "invented" below) keep the real ones' shape so a client's parser treats them alike.

This module imports nothing from ``_app`` at run time: it reaches the app only through the
``emu`` argument, so ``_app`` can import the handlers for its route table without a cycle.
"""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Any

from dashscope_embed.emulator._faults import Rejection
from dashscope_embed.emulator._format import format_rows

from ._sparse import sparse_vector
from ._vectors import text_vectors
from ._words import count_tokens

if TYPE_CHECKING:
    from dashscope_embed._models import ModelSpec
    from dashscope_embed.emulator._app import Emulator, EmuRequest, EmuResponse

__all__ = ["COMPATIBLE_PATH", "NATIVE_PATH", "handle_compatible", "handle_native"]

NATIVE_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
COMPATIBLE_PATH = "/compatible-mode/v1/embeddings"

#: The prefix the real service puts inside ``message`` of algorithm-side validation errors.
PREFIX = "<400> InternalError.Algo.InvalidParameter: "
ILLEGAL_INPUT = ("BadRequest.IllegalInput", "The input parameter requires json format.")
EMPTY_MODEL = ("BadRequest.EmptyModel", 'Required parameter "model" missing from request.')
EMPTY_INPUT = ("BadRequest.EmptyInput", "Required input parameter missing from request.")
MODEL_NOT_EXIST = "Model not exist."
#: Compatible mode, unknown or multimodal model (§4: the documented 404, not the native 400).
MODEL_NOT_SUPPORTED = ("model_not_supported", "Unsupported model for OpenAI compatibility mode.")
NOT_STRINGS = "Value error, contents is neither str nor list of str.: input.contents"
# Invented (no real message recorded): the generic InvalidParameter text of the error-code page.
BAD_PARAMETERS = "Required parameter(s) missing or invalid, please check the request parameters."

TEXT_TYPES = ("query", "document")
OUTPUT_TYPES = ("dense", "sparse", "dense&sparse")
ENCODINGS = ("float", "base64")


def _invalid(message: str) -> Rejection:
    return Rejection(400, "InvalidParameter", PREFIX + message)


def batch_size_message(limit: int) -> str:
    """The real "too many texts" message (its field path says ``input.contents`` for text too)."""
    return (
        f"{PREFIX}Value error, batch size is invalid, "
        f"it should not be larger than {limit}.: input.contents"
    )


def length_message(max_tokens: int) -> str:
    """The real message for an empty, blank or over-long text."""
    return f"{PREFIX}Range of input length should be [1, {max_tokens}]"


def dimension_message(spec: ModelSpec) -> str:
    """The real whitelist message with the model's dims; quirks kept ("v3" always, "shold")."""
    allowed = sorted(spec.dimensions) or [1, spec.max_dimension]
    return (
        f"{PREFIX}Value error, dimension for embedding v3 is invalid, "
        f"its value shold be in [{', '.join(map(str, allowed))}]"
    )


def _parse(req: EmuRequest) -> dict[str, Any]:
    try:
        body = req.json()
    except ValueError:  # UnicodeDecodeError is a ValueError too
        raise Rejection(400, *ILLEGAL_INPUT) from None
    if not isinstance(body, dict):
        raise Rejection(400, *ILLEGAL_INPUT)
    return body


def _model(emu: Emulator, body: dict[str, Any], *, compatible: bool = False) -> ModelSpec:
    name = body.get("model")
    if name is None or name == "":
        raise Rejection(400, *EMPTY_MODEL)
    spec = emu.model_spec(name, kind="text") if isinstance(name, str) else None
    if spec is None and compatible:
        raise Rejection(404, *MODEL_NOT_SUPPORTED, error_type="invalid_request_error")
    if spec is None:
        raise Rejection(400, "InvalidParameter", MODEL_NOT_EXIST)
    return spec


def _texts(emu: Emulator, spec: ModelSpec, value: object) -> tuple[list[str], int]:
    """Validate the texts; return them and their total token count."""
    if value is None:
        raise Rejection(400, *EMPTY_INPUT)
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list):
        raise _invalid(NOT_STRINGS)
    if not texts:
        raise Rejection(400, *EMPTY_INPUT)
    limit = emu.row_limit(spec)
    if len(texts) > limit:
        raise Rejection(400, "InvalidParameter", batch_size_message(limit))
    if not all(isinstance(text, str) for text in texts):
        raise _invalid(NOT_STRINGS)
    total = 0
    for text in texts:
        tokens = count_tokens(text)
        if not 1 <= tokens <= spec.max_tokens:
            raise Rejection(400, "InvalidParameter", length_message(spec.max_tokens))
        total += tokens
    return texts, total


def _dimension(spec: ModelSpec, value: object) -> int:
    if value is None or not spec.supports_dimension:
        # v1/v2 reportedly ignore ``dimension`` and answer their fixed size (issue 16); our
        # client still refuses it before sending, so only other clients reach this.
        return spec.default_dimension
    allowed = spec.dimensions or range(1, spec.max_dimension + 1)
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise Rejection(400, "InvalidParameter", dimension_message(spec))
    return value


def _choice(name: str, value: object, allowed: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        # Invented, in the shape of the real dimension message.
        raise _invalid(
            f"Value error, {name} is invalid, its value should be in [{', '.join(allowed)}]"
        )
    return str(value)


def handle_native(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``POST /api/v1/services/embeddings/text-embedding/text-embedding`` (§2)."""
    body = _parse(req)
    if body.get("model") in (None, ""):
        raise Rejection(400, *EMPTY_MODEL)
    payload = body.get("input")
    if payload is None:
        raise Rejection(400, *EMPTY_INPUT)
    if not isinstance(payload, dict):
        raise Rejection(400, *ILLEGAL_INPUT)
    spec = _model(emu, body)
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise Rejection(400, "InvalidParameter", BAD_PARAMETERS)
    texts, tokens = _texts(emu, spec, payload.get("texts"))
    dimension = _dimension(spec, parameters.get("dimension"))
    text_type = _choice("text_type", parameters.get("text_type"), TEXT_TYPES, "document")
    output_type = _choice("output_type", parameters.get("output_type"), OUTPUT_TYPES, "dense")
    if "sparse" in output_type and not spec.supports_sparse:
        # Invented: the doc records no message for sparse output from a dense-only model.
        raise _invalid(
            f"Value error, output_type {output_type} is not supported by model {spec.name}."
        )
    instruct = parameters.get("instruct")
    if instruct is not None and not isinstance(instruct, str):
        raise _invalid("Value error, instruct should be a string.")  # invented
    # Like the real service: an instruction only steers query embeddings of models that take one.
    if not (spec.supports_instruct and text_type == "query"):
        instruct = None
    emu.admit(spec.name, tokens=tokens, rows=len(texts))

    dense_rows: list[bytes] = []
    if output_type != "sparse":
        vectors = text_vectors(
            spec.name,
            texts,
            dimension=dimension,
            text_type=text_type,
            instruct=instruct,
            max_dimension=spec.max_dimension,
        )
        dense_rows = format_rows(vectors)
    items: list[bytes] = []
    for index, text in enumerate(texts):
        item = b"{"
        if output_type != "dense":
            sparse = json.dumps(sparse_vector(text), ensure_ascii=False, separators=(",", ":"))
            item += b'"sparse_embedding":' + sparse.encode() + b","
        if dense_rows:
            item += b'"embedding":' + dense_rows[index] + b","
        items.append(item + b'"text_index":%d}' % index)
    request_id = emu.new_request_id()
    out = b'{"output":{"embeddings":[%s]},"usage":{"total_tokens":%d},"request_id":"%s"}' % (
        b",".join(items),
        tokens,
        request_id.encode(),
    )
    return emu.respond(out, request_id)


def handle_compatible(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``POST /compatible-mode/v1/embeddings`` (§4): the OpenAI embeddings API.

    ``encoding_format="base64"`` returns base64 of little-endian float32, as OpenAI does; whether
    the real DashScope service honours it is unverified (its docs say only ``float``).
    DashScope-only options (``text_type``, ``output_type``, ``instruct``) are ignored here.
    """
    body = _parse(req)
    spec = _model(emu, body, compatible=True)
    texts, tokens = _texts(emu, spec, body.get("input"))
    dimension = _dimension(spec, body.get("dimensions"))
    encoding = _choice("encoding_format", body.get("encoding_format"), ENCODINGS, "float")
    emu.admit(spec.name, tokens=tokens, rows=len(texts))

    vectors = text_vectors(spec.name, texts, dimension=dimension, max_dimension=spec.max_dimension)
    if encoding == "base64":
        rows = [b'"' + base64.b64encode(row.astype("<f4").tobytes()) + b'"' for row in vectors]
    else:
        rows = format_rows(vectors)
    items = [
        b'{"embedding":%s,"index":%d,"object":"embedding"}' % (row, index)
        for index, row in enumerate(rows)
    ]
    request_id = emu.new_request_id()
    model = json.dumps(spec.name, ensure_ascii=False).encode()
    out = (
        b'{"data":[%s],"model":%s,"object":"list",'
        b'"usage":{"prompt_tokens":%d,"total_tokens":%d},"id":"%s"}'
        % (b",".join(items), model, tokens, tokens, request_id.encode())
    )
    return emu.respond(out, request_id)
