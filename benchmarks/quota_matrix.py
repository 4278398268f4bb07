"""Issue 13 benchmark: saturate quotas from the first second, every quota model, default settings.

Each cell starts a fresh emulator in its own process (``benchmarks._timed_server``: the
emulator plus a server-side timeline), embeds ``requests × 10`` distinct texts with
``text-embedding-v4`` through one client *path* with default settings, checks every vector
against the emulator's, in order, and reads the timeline. Measured at the server, from the
first request to the last answer:

* **rate / quota**: answered requests (HTTP 200) per second over the quota's per-second rate
  (tokens for the TPM row; for the no-quota row, over ``cap / latency``, the most the default
  concurrency cap allows);
* **429 share** of all requests; **requests / minimum** (the minimum is one request per 10
  texts; for chaos rows, that divided by the share of answers the faults let through);
* **peak in flight** at the server.

Targets (issue 13): ≥ 0.9 of the quota with ≤ 2 % 429s; chaos rows ≥ 0.75 with requests
≤ 1.25 × the minimum the fault rate implies.

Paths are callables ``path(url, texts, dimension) -> vectors``; the adapters' paths plug into
:data:`PATHS`. Run: ``python -m benchmarks.quota_matrix [--quick] [--only SUBSTRING]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks._harness import EmulatorProcess, corpus, table
from dashscope_embed import AsyncDashScopeClient, DashScopeClient
from dashscope_embed._config import DEFAULT_MAX_CONCURRENCY
from dashscope_embed.emulator import count_tokens, text_vector

MODEL = "text-embedding-v4"
ROWS = 10  # rows per request (the model's limit)
KEY = "sk-bench"

Path = Callable[[str, list[str], int], np.ndarray]


def core_sync(url: str, texts: list[str], dimension: int) -> np.ndarray:
    """``DashScopeClient.embed_texts`` with default settings."""
    with DashScopeClient(KEY, base_url=url) as client:
        return client.embed_texts(texts, model=MODEL, dimension=dimension).embeddings


def core_async(url: str, texts: list[str], dimension: int) -> np.ndarray:
    """``AsyncDashScopeClient.embed_texts`` with default settings, in a fresh event loop."""

    async def run() -> np.ndarray:
        async with AsyncDashScopeClient(KEY, base_url=url) as client:
            res = await client.embed_texts(texts, model=MODEL, dimension=dimension)
            return res.embeddings

    return asyncio.run(run())


_RAY_WORKERS = 4


def ray_data(url: str, texts: list[str], dimension: int) -> np.ndarray:
    """Ray Data, 4 ``DashScopeEmbedder`` workers sharing one ``SharedQuota`` (no limits given)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import ray.data

    from dashscope_embed.ray import DashScopeEmbedder, SharedQuota

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True
    quota = SharedQuota()
    ds = ray.data.from_items(
        [{"id": i, "text": t} for i, t in enumerate(texts)],
        override_num_blocks=_RAY_WORKERS * 4,
    ).map_batches(
        DashScopeEmbedder,
        fn_constructor_kwargs={
            "base_url": url,
            "api_key": KEY,
            "model": MODEL,
            "dimension": dimension,
            "quota": quota,
        },
        batch_format="pyarrow",
        batch_size=200,
        compute=ray.data.ActorPoolStrategy(size=_RAY_WORKERS),
        num_cpus=0.25,
    )
    rows = sorted(ds.take_all(), key=lambda r: r["id"])
    quota.kill()
    return np.stack([np.asarray(r["embedding"], dtype=np.float32) for r in rows])


def langchain(url: str, texts: list[str], dimension: int) -> np.ndarray:
    """LangChain ``embed_documents`` with default settings."""
    from langchain_dashscope_embed import DashScopeEmbeddings

    emb = DashScopeEmbeddings(api_key=KEY, base_url=url, model=MODEL, dimension=dimension)
    return np.array(emb.embed_documents(texts), dtype=np.float32)


def llama_index(url: str, texts: list[str], dimension: int) -> np.ndarray:
    """LlamaIndex ``VectorStoreIndex.from_documents`` with default settings."""
    from llama_index.core import Document, VectorStoreIndex

    from llama_index_dashscope_embed import DashScopeEmbedding

    emb = DashScopeEmbedding(api_key=KEY, base_url=url, model_name=MODEL, dimension=dimension)
    docs = [Document(text=t, id_=str(i)) for i, t in enumerate(texts)]
    index = VectorStoreIndex.from_documents(docs, embed_model=emb)
    store = index.vector_store
    by_text = {n.get_content(): store.get(n.node_id) for n in index.docstore.docs.values()}
    return np.array([by_text[t] for t in texts], dtype=np.float32)


PATHS: dict[str, Path] = {
    "core sync": core_sync,
    "core async": core_async,
    "langchain": langchain,
    "llama_index": llama_index,
    "ray 4w": ray_data,
}


@dataclass(frozen=True)
class Cell:
    """One benchmark run: a server (quota, model, latency, faults) and a job through a path."""

    path: str
    requests: int
    rpm: int | None = None
    tpm: int | None = None
    quota_model: str = "bucket"
    latency: float = 0.3
    dimension: int = 256
    words: int = 8
    error_rate: float = 0.0
    drop_rate: float = 0.0
    note: str = ""

    def label(self) -> str:
        quota = f"{self.rpm:,} RPM" if self.rpm else (f"{self.tpm:,} TPM" if self.tpm else "none")
        chaos = ""
        if self.error_rate:
            chaos += f" +{self.error_rate:.0%} 500"
        if self.drop_rate:
            chaos += f" +{self.drop_rate:.0%} drop"
        return f"{quota} {self.quota_model if self.rpm or self.tpm else ''}{chaos}".strip()

    def expected_seconds(self) -> float:
        """A rough duration at the quota (for the runtime estimate)."""
        if self.rpm:
            per_s = self.rpm / 60.0
            if self.quota_model == "minute":
                return 60.0 * (math.ceil(self.requests / self.rpm) - 1) + self.latency + 1
            return self.requests / per_s + self.latency
        if self.tpm:
            return 15.0
        return self.requests * self.latency / DEFAULT_MAX_CONCURRENCY + 1

    def server_args(self) -> list[str]:
        args = ["--latency", str(self.latency), "--latency-jitter", str(self.latency / 10)]
        if self.rpm:
            args += ["--rpm", str(self.rpm)]
        if self.tpm:
            args += ["--tpm", str(self.tpm)]
        if self.rpm or self.tpm:
            args += ["--quota-model", self.quota_model]
        if self.error_rate:
            args += ["--error-rate", str(self.error_rate)]
        if self.drop_rate:
            args += ["--drop-rate", str(self.drop_rate)]
        return args


@dataclass
class Measured:
    cell: Cell
    summary: dict[str, Any] = field(default_factory=dict)
    correct: bool = False
    error: str = ""

    def row(self) -> dict[str, object]:
        c, s = self.cell, self.summary
        base: dict[str, object] = {
            "path": c.path,
            "quota": c.label(),
            "latency ms": f"{c.latency * 1000:.0f}",
            "requests": c.requests,
        }
        if self.error or not s.get("requests"):
            return {**base, "rate/quota": "-", "429 share": "-", "req/min": "-",
                    "peak in flight": "-", "s": "-", "ok": False,
                    "target": f"ERROR {self.error[:60]}"}  # fmt: skip
        wall = max(1e-9, s["last"] - s["first"])
        ok = s["by_status"].get("200", 0)
        throttled = s["by_status"].get("429", 0)
        total = s["requests"]
        if c.rpm:
            rate = ok / wall / (c.rpm / 60.0)
        elif c.tpm:
            rate = s["tokens"] / wall / (c.tpm / 60.0)
        else:
            rate = ok / wall / (DEFAULT_MAX_CONCURRENCY / c.latency)
        through = (1 - c.drop_rate) * (1 - c.error_rate)
        minimum = c.requests / through
        share = throttled / total
        chaos_hit = rate >= 0.75 and total <= 1.25 * minimum
        hit = chaos_hit if c.error_rate or c.drop_rate else rate >= 0.9 and share <= 0.02
        return {
            **base,
            "rate/quota": f"{rate:.2f}",
            "429 share": f"{share:.1%}",
            "req/min": f"{total / minimum:.2f}",
            "peak in flight": s["peak_in_flight"],
            "s": f"{wall:.1f}",
            "ok": self.correct,
            "target": "met" if hit and self.correct else "MISSED",
        }


def _timeline(url: str) -> dict[str, Any]:
    """The server's timeline (asked again when a chaos cell's fault injection answers 500)."""
    req = urllib.request.Request(
        url + "/__bench/timeline", headers={"Authorization": f"Bearer {KEY}"}
    )
    for attempt in range(20):
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                data: dict[str, Any] = json.loads(resp.read())
            return data
        except (urllib.error.URLError, ConnectionError):
            if attempt == 19:
                raise
    raise AssertionError("unreachable")


def run_cell(cell: Cell, paths: dict[str, Path]) -> Measured:
    """One cell in a fresh emulator process; every vector is checked, in order."""
    n = cell.requests * ROWS
    texts = corpus(n, words=cell.words, seed=cell.requests + (cell.rpm or 0))
    measured = Measured(cell)
    with EmulatorProcess(cell.server_args(), module="benchmarks._timed_server") as emu:
        try:
            vectors = paths[cell.path](emu.url, texts, cell.dimension)
        except Exception as exc:  # a failed cell is a row, not the end of the matrix
            measured.error = f"{type(exc).__name__}: {exc}"
            vectors = np.zeros((0, cell.dimension))
        measured.summary = _timeline(emu.url)
    if not measured.error:
        expected = np.stack([text_vector(MODEL, t, dimension=cell.dimension) for t in texts])
        measured.correct = vectors.shape == expected.shape and bool(
            np.allclose(vectors, expected, atol=1e-5)
        )
    return measured


def _tpm_for(words: int) -> int:
    """A TPM quota worth 10 requests per second of ``words``-word texts."""
    per_request = sum(count_tokens(t) for t in corpus(ROWS, words=words, seed=5))
    return per_request * 600


def full_cells(paths: list[str]) -> list[Cell]:
    """The full matrix (see the module docstring for what is cut to fit ~20 minutes)."""
    cells: list[Cell] = []
    for model in ("bucket", "window"):
        for rpm in (600, 1_200, 6_000):
            for latency in (0.05, 0.3, 1.0):
                sizes = (300, 3_000) if rpm == 6_000 else (300,)
                for size in sizes:
                    cells.append(Cell("core sync", size, rpm, quota_model=model, latency=latency))
    for rpm, size in ((600, 900), (1_200, 1_500), (6_000, 300)):  # across a minute boundary
        cells.append(Cell("core sync", size, rpm, quota_model="minute", latency=0.3))
    for rpm in (600, 1_200, 6_000):
        for latency in (0.05, 0.3, 1.0):
            cells.append(Cell("core async", 300, rpm, latency=latency))
    for path in ("langchain", "llama_index"):
        for model in ("bucket", "window"):
            cells.append(Cell(path, 300, 1_200, quota_model=model, latency=0.3))
        cells.append(Cell(path, 300, 6_000, quota_model="window", latency=0.3))
    cells += _extra_cells()
    return [c for c in cells if c.path in paths]


def _extra_cells() -> list[Cell]:
    words = 120
    return [
        Cell("core sync", 3_000, 30_000, latency=0.3, dimension=64),
        Cell("core async", 3_000, 30_000, latency=0.3, dimension=64),
        Cell("core sync", 3_000, None, latency=0.3, dimension=64, note="unthrottled"),
        Cell("core sync", 300, None, tpm=_tpm_for(words), latency=0.15, words=words),
        Cell("core sync", 300, 1_200, latency=0.15, error_rate=0.1),
        Cell("core sync", 300, 1_200, latency=0.15, error_rate=0.1, drop_rate=0.05),
        Cell("core async", 300, 1_200, latency=0.15, error_rate=0.1, drop_rate=0.05),
        Cell("ray 4w", 300, 1_200, latency=0.15),
        Cell("ray 4w", 300, 1_200, quota_model="window", latency=0.15),
    ]


def quick_cells(paths: list[str]) -> list[Cell]:
    """A representative subset: a few minutes."""
    cells = [
        Cell("core sync", 300, 1_200, latency=0.3),
        Cell("core async", 300, 1_200, latency=0.3),
        Cell("core sync", 300, 1_200, quota_model="window", latency=0.05),
        Cell("core sync", 300, 6_000, quota_model="window", latency=0.3),
        Cell("core sync", 300, 600, quota_model="minute", latency=0.3),
        Cell("core sync", 3_000, 30_000, latency=0.3, dimension=64),
        Cell("core sync", 300, None, tpm=_tpm_for(120), latency=0.15, words=120),
        Cell("core sync", 300, 1_200, latency=0.15, error_rate=0.1, drop_rate=0.05),
        Cell("langchain", 300, 1_200, latency=0.3),
        Cell("llama_index", 300, 1_200, latency=0.3),
        Cell("ray 4w", 300, 1_200, latency=0.15),
    ]
    return [c for c in cells if c.path in paths]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a representative subset")
    parser.add_argument("--only", default="", help="run the cells whose label contains this")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated path names")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray path")
    ns, _ = parser.parse_known_args()
    paths = [p for p in ns.paths.split(",") if p in PATHS and not (ns.no_ray and "ray" in p)]
    cells = quick_cells(paths) if ns.quick else full_cells(paths)
    if ns.only:
        cells = [c for c in cells if ns.only in f"{c.path} {c.label()} {c.latency} {c.requests}"]
    estimate = sum(c.expected_seconds() + 3 for c in cells)
    print(
        f"## Quota matrix (issue 13): {len(cells)} cells, about {estimate / 60:.0f} min\n\n"
        f"{MODEL}, 10 rows/request, default settings (cap {DEFAULT_MAX_CONCURRENCY}), measured "
        "at the server from the first request to the last answer.\n",
        flush=True,
    )
    rows = []
    started = time.monotonic()
    for cell in cells:
        m = run_cell(cell, PATHS)
        rows.append(m.row())
        print(" | ".join(str(v) for v in rows[-1].values()), file=sys.stderr, flush=True)
    print(table(rows))
    print(f"\n{len(cells)} cells in {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
