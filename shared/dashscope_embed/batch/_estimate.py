"""Know the cost first: rows, requests, estimated tokens and price, with nothing sent.

:func:`estimate_cost` reads the input once and checks every row as a real run would (a
string, not empty; the options against the model), counts requests for the real-time path
(``rows_per_request`` per call) and lines/files for the Batch path, and estimates tokens.

Tokens are an *estimate*: the service's tokenizer is not public, so each CJK character counts
one token and every other word or punctuation run ``ceil(len / 4)`` (about four characters per
token for English, the usual rule for these tokenizers). Rows whose estimate passes the model's
limit are reported as rows a real run would fail (the service has the last word). Prices come
from :mod:`dashscope_embed._prices` (list prices, dated, to verify).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from dashscope_embed._models import DEFAULT_TEXT_MODEL, get_model
from dashscope_embed._prices import PRICE_SOURCE, PRICES_AS_OF, Price, price_for
from dashscope_embed.io._iter import DEFAULT_CHUNK_SIZE
from dashscope_embed.text._options import TextOptions, validate_text_options

from ._files import MAX_FILE_BYTES, MAX_LINES_PER_FILE
from ._input import check_text

__all__ = ["CostEstimate", "estimate_cost", "estimate_tokens"]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+|[^\\w\\s]+")
_LINE_OVERHEAD = 160  # bytes of a Batch input line around its texts (custom_id, url, body keys)


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text`` (see the module docstring for the rule)."""
    return sum((len(run) + 3) // 4 for run in _TOKEN_RE.findall(text))


@dataclass(frozen=True)
class CostEstimate:
    """What a run would send and cost.

    Attributes:
        model: The model.
        region: The region priced (``None``: Beijing, the default host).
        rows: Input rows (every one checked).
        tokens: Estimated tokens of the rows a Batch job would embed (every row is a line).
        realtime_requests: Requests of a real-time run (each distinct text of a stream chunk
            is sent once).
        batch_lines: Request lines of a Batch job (``rows_per_line`` rows each).
        batch_files: Input files of a Batch job (≤ 50,000 lines and ≤ 500 MB each).
        too_long: Rows whose estimate passes the model's token limit (a real run fails them).
        price: The list price, or ``None`` if the reference has none for the model and region.
        known_model: The model is in the catalog (else the service may refuse it: it is not
            asked during a dry run).
    """

    model: str
    region: str | None
    rows: int
    tokens: int
    realtime_requests: int
    batch_lines: int
    batch_files: int
    too_long: tuple[int, ...]
    price: Price | None
    known_model: bool = True
    realtime_tokens: int | None = None

    @property
    def realtime_billed(self) -> int:
        """Estimated tokens of a real-time run (repeated texts of a chunk are billed once)."""
        return self.tokens if self.realtime_tokens is None else self.realtime_tokens

    @property
    def realtime_cost(self) -> float | None:
        return None if self.price is None else self.realtime_billed / 1e6 * self.price.realtime

    @property
    def batch_cost(self) -> float | None:
        if self.price is None or self.price.batch is None:
            return None
        return self.tokens / 1e6 * self.price.batch

    def describe(self) -> list[str]:
        """Human-readable lines (what ``embed --dry-run`` prints)."""
        out = [
            f"dry run: nothing was sent. {self.rows} rows for {self.model}",
            f"  real time: {self.realtime_requests} requests",
            f"  batch:     {self.batch_lines} request lines in {self.batch_files} input file(s)",
            f"  estimated tokens: {self.realtime_billed} real time, {self.tokens} batch "
            "(an estimate: the service counts the real ones; real time sends a text repeated "
            "within a chunk once)",
        ]
        if not self.known_model:
            out.append(
                f"  {self.model} is not in the model catalog: limits are guesses, and the "
                "service may refuse the name (a dry run does not ask it)"
            )
        if self.too_long:
            shown = ", ".join(map(str, self.too_long[:10]))
            more = " …" if len(self.too_long) > 10 else ""
            out.append(
                f"  {len(self.too_long)} row(s) look longer than {self.model} accepts and would "
                f"fail (input {shown}{more})"
            )
        region = self.region or "cn-beijing"
        if self.price is None:
            out.append(f"  price: no list price recorded for {self.model} in {region}")
            return out
        cur = self.price.currency
        out.append(
            f"  estimated price, real time: {cur} {_money(self.realtime_cost)} "
            f"({cur} {self.price.realtime:g} per 1M tokens, {region})"
        )
        if self.batch_cost is None:
            out.append(f"  estimated price, batch: not available (no Batch embeddings in {region})")
        else:
            out.append(
                f"  estimated price, batch (half price): {cur} {_money(self.batch_cost)} "
                f"({cur} {self.price.batch:g} per 1M tokens)"
            )
        out.append(
            f"  list price as of {PRICES_AS_OF}, verify: {self.price.source or PRICE_SOURCE}"
        )
        return out


def _money(amount: float | None) -> str:
    """Two decimals, or six significant ones for amounts under a cent."""
    if amount is None:
        return "?"
    return f"{amount:.2f}" if amount >= 0.01 else f"{amount:.6f}"


def estimate_cost(
    texts: Iterable[str],
    *,
    model: str = DEFAULT_TEXT_MODEL,
    dimension: int | None = None,
    region: str | None = None,
    rows_per_request: int | None = None,
    max_lines_per_file: int = MAX_LINES_PER_FILE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> CostEstimate:
    """Check every text and estimate a run's requests, tokens and price; sends nothing.

    Args:
        texts: The input (read once).
        model: The model (its row and token limits are used).
        dimension: Checked against the model like a real run does.
        region: The region to price (``None``: Beijing).
        rows_per_request: Rows per request / per Batch line (default: the model's limit).
        max_lines_per_file: Lines per Batch input file.
        chunk_size: Rows per real-time call (what the stream hands the client at once).

    Raises:
        InvalidInputError: a bad option, a non-string or an empty text (naming its index), as a
            real run would refuse it before sending anything.
    """
    spec = get_model(model, kind="text")
    validate_text_options(TextOptions(model, "document", dimension, "dense"), spec, region=None)
    size = rows_per_request or spec.max_batch_size
    rows = tokens = lines = files = 0
    file_lines = file_bytes = 0
    line_rows = line_bytes = 0
    too_long: list[int] = []
    seen: set[str] = set()  # distinct texts of the current real-time chunk
    rt_tokens = rt_requests = 0

    def close_chunk() -> None:
        nonlocal rt_requests
        rt_requests += math.ceil(len(seen) / size)
        seen.clear()

    def close_line() -> None:
        nonlocal lines, files, file_lines, file_bytes, line_rows, line_bytes
        if not line_rows:
            return
        size_bytes = line_bytes + _LINE_OVERHEAD
        if (
            not file_lines
            or file_lines >= max_lines_per_file
            or (file_bytes + size_bytes > MAX_FILE_BYTES)
        ):
            files += 1
            file_lines = file_bytes = 0
        lines += 1
        file_lines += 1
        file_bytes += size_bytes
        line_rows = line_bytes = 0

    for row, text in enumerate(texts):
        check_text(row, text)
        count = estimate_tokens(text)
        if count > spec.max_tokens:
            too_long.append(row)
        else:
            tokens += count
            if text not in seen:
                rt_tokens += count
        seen.add(text)
        rows += 1
        line_rows += 1
        line_bytes += len(text.encode("utf-8")) + 4
        if line_rows == size:
            close_line()
        if (row + 1) % chunk_size == 0:
            close_chunk()
    close_line()
    close_chunk()
    return CostEstimate(
        model=model,
        region=region,
        rows=rows,
        tokens=tokens,
        realtime_requests=rt_requests,
        batch_lines=lines,
        batch_files=files,
        too_long=tuple(too_long),
        price=price_for(model, region),
        known_model=spec.known,
        realtime_tokens=rt_tokens,
    )
