"""Benchmark: client CPU per 1024-d vector (in-process transport, no latency).

Two numbers:
* ``parse`` — :func:`dashscope_embed._wire.parse_text_response` on a real-shaped body of ten
  1024-d vectors written with 17 significant digits (as the service does);
* ``client`` — the whole ``embed_texts`` path (validation, body building, httpx, parsing,
  reassembly) against a transport that answers instantly with pre-built bodies, so none of the
  emulator's own work is counted.

Run: ``python -m benchmarks.cpu``.
"""

from __future__ import annotations

import json
import time

import httpx
import numpy as np

from benchmarks._harness import corpus, cpu_seconds, table
from dashscope_embed import DashScopeClient, _wire
from dashscope_embed._wire import parse_text_response

DIM = 1024
ROWS = 10


def body(rows: int = ROWS, dim: int = DIM, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((rows, dim))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    items = [{"embedding": v.tolist(), "text_index": i} for i, v in enumerate(vecs)]
    return json.dumps(
        {"output": {"embeddings": items}, "usage": {"total_tokens": rows * 5}, "request_id": "r"}
    ).encode()


def parse_us_per_vector(reps: int = 300) -> float:
    data = body()
    c0 = cpu_seconds()
    for _ in range(reps):
        parse_text_response(data, rows=ROWS, want_dense=True, want_sparse=False)
    return (cpu_seconds() - c0) / (reps * ROWS) * 1e6


def client_us_per_vector(n: int = 20_000, max_concurrency: int | None = None) -> float:
    canned = body()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=canned, headers={"content-type": "application/json"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = DashScopeClient(
        "sk-bench", base_url="http://cpu.test", http_client=http, max_concurrency=max_concurrency
    )
    texts = corpus(n)
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    res = client.embed_texts(texts)
    cpu = cpu_seconds() - c0
    assert res.embeddings.shape == (n, DIM)
    del t0
    return cpu / n * 1e6


def decoder_name() -> str:
    """The decoder the core picks for dense vectors: the fastest one installed."""
    if _wire._simdjson is not None:
        return "pysimdjson"
    return "orjson" if _wire._orjson is not None else "stdlib json"


def main() -> None:
    rows = []
    saved = (_wire._simdjson, _wire._orjson)
    # Each decoder the core can use, fastest first; the slower ones by switching faster ones off.
    for attr in ("_simdjson", "_orjson", None):
        name = decoder_name()
        rows.append(
            {"measure": "parse only", "decoder": name, "µs": f"{parse_us_per_vector():.1f}"}
        )
        if attr is None or getattr(_wire, attr) is None:
            continue
        setattr(_wire, attr, None)
    _wire._simdjson, _wire._orjson = saved
    name = decoder_name()
    rows.append(
        {
            "measure": "whole client path, one batch at a time (max_concurrency=1)",
            "decoder": name,
            "µs": f"{client_us_per_vector(max_concurrency=1):.1f}",
        }
    )
    rows.append(
        {
            "measure": "whole client path, default concurrency (threads)",
            "decoder": name,
            "µs": f"{client_us_per_vector():.1f}",
        }
    )
    print("## Client CPU per 1024-d vector\n")
    print(table(rows))


if __name__ == "__main__":
    main()
