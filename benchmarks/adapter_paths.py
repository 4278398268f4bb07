"""The adapters' default entry points, side by side with a sequential client, in one run.

1,000 distinct texts (100 requests of 10 with text-embedding-v4), default settings, against the
emulator in its own process (its caches warmed untimed, the measured client cold); every vector
is checked against the emulator's own. Scenarios: no
quota at 50 ms latency, and a 1,200 RPM quota (enforced per second, a token bucket) at 150 ms.
The sequential baseline sends one 10-row request at a time, as the integrations we replace do.

Run: ``python -m benchmarks.adapter_paths``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import numpy as np

from benchmarks._harness import EmulatorProcess, corpus, table
from dashscope_embed.emulator import text_vector

KEY = "sk-bench-adapters"
V4 = "text-embedding-v4"
N = 1000


def sequential(url: str, texts: list[str]) -> list[list[float]]:
    out: list[list[float]] = []
    with httpx.Client(timeout=60) as http:
        for i in range(0, len(texts), 10):
            for _ in range(20):
                resp = http.post(
                    f"{url}/api/v1/services/embeddings/text-embedding/text-embedding",
                    json={"model": V4, "input": {"texts": texts[i : i + 10]}},
                    headers={"Authorization": f"Bearer {KEY}"},
                )
                if resp.status_code == 200:
                    break
                time.sleep(1.0)  # what a plain client does on a 429
            items = sorted(resp.json()["output"]["embeddings"], key=lambda e: e["text_index"])
            out.extend(e["embedding"] for e in items)
    return out


def langchain(url: str, texts: list[str]) -> list[list[float]]:
    from langchain_dashscope_embed import DashScopeEmbeddings

    return DashScopeEmbeddings(api_key=KEY, base_url=url).embed_documents(texts)


def langchain_async(url: str, texts: list[str]) -> list[list[float]]:
    from langchain_dashscope_embed import DashScopeEmbeddings

    return asyncio.run(DashScopeEmbeddings(api_key=KEY, base_url=url).aembed_documents(texts))


def llama_index(url: str, texts: list[str]) -> list[list[float]]:
    from llama_index.core import Document, VectorStoreIndex

    from llama_index_dashscope_embed import DashScopeEmbedding

    docs = [Document(text=t, id_=str(i)) for i, t in enumerate(texts)]
    index = VectorStoreIndex.from_documents(
        docs, embed_model=DashScopeEmbedding(api_key=KEY, base_url=url)
    )
    store = index.vector_store
    by_text = {n.get_content(): store.get(n.node_id) for n in index.docstore.docs.values()}
    return [by_text[t] for t in texts]


PATHS: dict[str, Callable[[str, list[str]], list[list[float]]]] = {
    "sequential client": sequential,
    "LangChain embed_documents": langchain,
    "LangChain aembed_documents": langchain_async,
    "LlamaIndex from_documents": llama_index,
}


def warm_up(url: str, texts: list[str]) -> None:
    """Fill the emulator's row caches untimed with a client of its own (so the timed run
    measures the path, not the emulator hashing words on a shared CPU); the path's own
    client starts cold, as a user's does. Under a quota, wait for the budget to refill."""
    from dashscope_embed import DashScopeClient

    with DashScopeClient(KEY, base_url=url, max_retries=20) as client:
        client.embed_texts(texts)
    time.sleep(3.0)


def main() -> None:
    texts = corpus(N)
    want = np.array([text_vector(V4, t) for t in texts], dtype=np.float32)
    rows = []
    for label, args, ideal in (
        ("no quota, 50 ms", ["--latency", "0.05"], None),
        ("1,200 RPM, 150 ms", ["--latency", "0.15", "--rpm", "1200"], 100 / 20.0),
    ):
        base = None
        for name, path in PATHS.items():
            with EmulatorProcess(args) as emu:
                warm_up(emu.url, texts)
                start = time.perf_counter()
                got = np.array(path(emu.url, texts), dtype=np.float32)
                wall = time.perf_counter() - start
            ok = got.shape == want.shape and bool(np.allclose(got, want, atol=1e-5))
            base = wall if base is None else base
            rows.append(
                {
                    "scenario": label,
                    "path": name,
                    "wall s": f"{wall:.2f}",
                    "vs sequential": f"{base / wall:.1f}x",
                    "of quota": "-" if ideal is None else f"{ideal / wall:.2f}",
                    "vectors right": ok,
                }
            )
    print("## Adapter default paths: 1,000 texts, side by side with a sequential client\n")
    print(table(rows))


if __name__ == "__main__":
    main()
