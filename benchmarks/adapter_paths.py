"""The adapters' default entry points, side by side with a sequential client, in one run.

1,000 distinct texts (100 requests of 10 with text-embedding-v4), default settings, against the
emulator in its own process (its caches warmed untimed, the measured client cold); every vector
is checked against the emulator's own. Scenarios: no
quota at 50 ms latency, and a 1,200 RPM quota (enforced per second, a token bucket) at 150 ms.
The sequential baseline sends one 10-row request at a time, as the integrations we replace do;
for LlamaIndex it is also run *through* ``from_documents`` (a ``BaseEmbedding`` posting one
request at a time), beside LlamaIndex's own cost (``MockEmbedding``: splitting, nodes, the
store), which no embedding client can remove. Imports are done before anything is timed.

Run: ``python -m benchmarks.adapter_paths``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import numpy as np
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.embeddings import MockEmbedding

from benchmarks._harness import EmulatorProcess, corpus, table
from dashscope_embed.emulator import text_vector
from langchain_dashscope_embed import DashScopeEmbeddings
from llama_index_dashscope_embed import DashScopeEmbedding

KEY = "sk-bench-adapters"
V4 = "text-embedding-v4"
N = 1000


def _post_sequentially(http: httpx.Client, url: str, texts: list[str]) -> list[list[float]]:
    out: list[list[float]] = []
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


def sequential(url: str, texts: list[str]) -> list[list[float]]:
    with httpx.Client(timeout=60) as http:
        return _post_sequentially(http, url, texts)


def langchain(url: str, texts: list[str]) -> list[list[float]]:
    return DashScopeEmbeddings(api_key=KEY, base_url=url).embed_documents(texts)


def langchain_async(url: str, texts: list[str]) -> list[list[float]]:
    return asyncio.run(DashScopeEmbeddings(api_key=KEY, base_url=url).aembed_documents(texts))


def _from_documents(texts: list[str], embed_model: BaseEmbedding) -> list[list[float]]:
    docs = [Document(text=t, id_=str(i)) for i, t in enumerate(texts)]
    index = VectorStoreIndex.from_documents(docs, embed_model=embed_model)
    store = index.vector_store
    by_text = {n.get_content(): store.get(n.node_id) for n in index.docstore.docs.values()}
    return [by_text[t] for t in texts]


def llama_index(url: str, texts: list[str]) -> list[list[float]]:
    return _from_documents(texts, DashScopeEmbedding(api_key=KEY, base_url=url))


class _SequentialEmbedding(BaseEmbedding):
    """What the sequential integrations do in LlamaIndex: one 10-row request at a time."""

    url: str = ""
    _http: httpx.Client = PrivateAttr(default_factory=lambda: httpx.Client(timeout=60))

    def _post(self, texts: list[str]) -> list[list[float]]:
        return _post_sequentially(self._http, self.url, texts)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._post([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._post([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._post(texts)


def llama_index_sequential(url: str, texts: list[str]) -> list[list[float]]:
    return _from_documents(texts, _SequentialEmbedding(url=url, embed_batch_size=10))


def llama_index_floor(texts: list[str]) -> float:
    """Seconds of LlamaIndex's own work with a free embedding: the floor of any client."""
    start = time.perf_counter()
    _from_documents(texts, MockEmbedding(embed_dim=8))
    return time.perf_counter() - start


def langchain_known_quota(url: str, texts: list[str]) -> list[list[float]]:
    """embed_documents told the quota (rpm=1200): paced to it from the first request."""
    return DashScopeEmbeddings(api_key=KEY, base_url=url, rpm=1200).embed_documents(texts)


PATHS: dict[str, Callable[[str, list[str]], list[list[float]]]] = {
    "sequential client": sequential,
    "LangChain embed_documents": langchain,
    "LangChain aembed_documents": langchain_async,
    "LlamaIndex from_documents, sequential embedding": llama_index_sequential,
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
    llama_index_floor(texts[:50])  # LlamaIndex's one-time set-up (its tokenizer), untimed
    rows = []
    for label, args, ideal in (
        ("no quota, 50 ms", ["--latency", "0.05"], None),
        ("1,200 RPM, 150 ms", ["--latency", "0.15", "--rpm", "1200"], 100 / 20.0),
    ):
        base = None
        paths = dict(PATHS)
        if ideal is not None:
            paths["LangChain embed_documents, rpm=1200 given"] = langchain_known_quota
        for name, path in paths.items():
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
    floor = llama_index_floor(texts)
    print("## Adapter default paths: 1,000 texts, side by side with a sequential client\n")
    print(table(rows))
    print(
        f"\nLlamaIndex's own work in from_documents (MockEmbedding, no requests): {floor:.2f} s;"
        " part of both LlamaIndex rows."
    )


if __name__ == "__main__":
    main()
