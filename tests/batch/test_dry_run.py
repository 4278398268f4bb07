"""Know the cost first (issue 14): `embed … --dry-run` / `estimate_cost` check every row, print
rows, requests, estimated tokens and price, and send nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashscope_embed import InvalidInputError, cli
from dashscope_embed._prices import PRICES_AS_OF
from dashscope_embed.batch import estimate_cost
from dashscope_embed.emulator import EmulatorServer

TEXTS = [
    "The quick brown fox jumps over the lazy dog, again and again.",
    "向量检索需要把文本转换成稠密向量",
    "Refund policy: items can be returned within 30 days (receipt required).",
    "short",
    "混合 mixed 文本 with English words and 标点。",
] * 40


def test_dry_run_sends_nothing_and_its_estimate_is_within_ten_percent(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run makes no request (the server's count stays 0) and prints rows, requests,
    tokens and both prices with the price table's date; the tokens are within 10 % of what the
    emulator bills when the same file is then embedded for real."""
    (env / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    argv = ["embed", "in.txt", "-o", "o.npy", "--dry-run", "--base-url", server.url]
    assert cli.main(argv) == 0
    assert server.emulator.stats.requests == 0
    assert not (env / "o.npy").exists()
    out = capsys.readouterr().out
    assert "dry run: nothing was sent. 200 rows for text-embedding-v4" in out
    assert "real time: 1 requests" in out  # 5 distinct texts: each sent once
    assert "batch:     20 request lines in 1 input file(s)" in out
    assert "estimated price, real time: CNY" in out
    assert "estimated price, batch (half price): CNY" in out
    assert f"list price as of {PRICES_AS_OF}, verify: https://" in out
    estimated = int(out.split("estimated tokens: ")[1].split()[0])  # the real-time figure
    assert (
        cli.main(["embed", "in.txt", "-o", "o.npy", "--no-progress", "--base-url", server.url]) == 0
    )
    billed = server.emulator.stats.tokens
    assert abs(estimated - billed) <= 0.1 * billed, (estimated, billed)


def test_estimate_cost_checks_rows_like_a_real_run(tmp_path: Path) -> None:
    """The Python equivalent: batch is half the real-time price; an empty row is refused with
    its index, like a real run, and a row over the token limit is reported as one that fails."""
    distinct = [f"{text} ({i})" for i, text in enumerate(TEXTS[:10])]
    est = estimate_cost(distinct, model="text-embedding-v4")
    assert (est.rows, est.realtime_requests, est.batch_lines, est.batch_files) == (10, 1, 1, 1)
    assert est.realtime_cost is not None
    assert est.batch_cost is not None
    assert est.batch_cost == pytest.approx(est.realtime_cost / 2)
    repeated = estimate_cost(TEXTS[:10])  # 5 texts twice: real time sends each once
    assert repeated.realtime_billed * 2 == repeated.tokens
    assert est.realtime_cost == pytest.approx(est.tokens / 1e6 * 0.5)  # CNY 0.0005 / 1K
    with pytest.raises(InvalidInputError) as info:
        estimate_cost(["fine", "   "])
    assert (info.value.index, info.value.rule) == (1, "empty_text")
    with pytest.raises(InvalidInputError, match="dimension"):
        estimate_cost(["fine"], dimension=100)
    long = estimate_cost(["fine", "word " * 9000])
    assert long.too_long == (1,)
    assert any("would fail" in line for line in long.describe())
    intl = estimate_cost(["fine"], region="ap-southeast-1")
    assert intl.price is not None
    assert intl.price.currency == "USD"
    assert intl.batch_cost is None
    assert any("batch: not available" in line for line in intl.describe())
    unknown = estimate_cost(["fine"], model="my-custom-embedding")
    assert unknown.price is None
    assert any("no list price" in line for line in unknown.describe())
    assert any("not in the model catalog" in line for line in unknown.describe())
