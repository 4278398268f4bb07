"""`make demo`: semantic search over a small bundled corpus, end to end.

Runs against the real DashScope service when ``DASHSCOPE_API_KEY`` is set; otherwise it starts
the local emulator (deterministic lexical vectors, not the real model) and says so. Parts:

1. the core client: documents vs queries (``text_type``), an ``instruct``, ranked hits, usage;
2. LangChain: ``DashScopeEmbeddings`` in an ``InMemoryVectorStore``;
3. LlamaIndex: ``DashScopeEmbedding`` in a ``VectorStoreIndex``;
4. a small text → image search in the multimodal space.

A part whose framework is not installed is skipped with the install command.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import connection

from dashscope_embed import APIConnectionError, DashScopeClient

MODEL = "text-embedding-v4"
DIM = 512
INSTRUCT = "Given a web search query, retrieve relevant passages that answer the query"

CORPUS = [
    "Cats are small domesticated carnivores; most cats eat meat-based cat food and fish.",
    "Dogs are loyal companions that need daily walks and enjoy playing fetch in the park.",
    "A savings account earns interest; compound interest grows your money over the years.",
    "Stock markets rise and fall; diversified index funds reduce the risk of investing.",
    "To bake sourdough bread, feed the starter, knead the dough and bake it in a hot oven.",
    "A quick tomato pasta sauce needs garlic, olive oil, tomatoes and fresh basil.",
    "The Moon orbits the Earth about every 27 days and always shows the same face.",
    "Mars is the red planet; rovers have found signs that water once flowed on Mars.",
    "Regular exercise and enough sleep lower stress and improve heart health.",
    "Drinking water through the day keeps the body hydrated, especially in hot weather.",
    "Python is a popular programming language for data science and machine learning.",
    "Vector databases store embeddings and find the nearest neighbours of a query vector.",
]
QUERIES = [
    ("what do cats eat", 0),
    ("how does compound interest grow savings", 2),
    ("recipe for sourdough bread in the oven", 4),
    ("is there water on Mars", 7),
    ("which database finds nearest neighbours of embeddings", 11),
]


def _banner(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 66 - len(title)))


def core_search(conn: dict[str, str]) -> int:
    """Rank the corpus for each query with the core client; return how many hit the expected doc."""
    _banner("1. core client: DashScopeClient")
    with DashScopeClient(**conn) as client:  # type: ignore[arg-type]
        t0 = time.perf_counter()
        docs = client.embed_texts(CORPUS, model=MODEL, dimension=DIM, text_type="document")
        queries = client.embed_texts(
            [q for q, _ in QUERIES],
            model=MODEL,
            dimension=DIM,
            text_type="query",
            instruct=INSTRUCT,
        )
        elapsed = time.perf_counter() - t0
        print(
            f"embedded {len(docs)} documents + {len(queries)} queries with {MODEL} "
            f"({DIM}-d) in {elapsed:.2f}s: {docs.usage.requests + queries.usage.requests} "
            f"requests, {docs.usage.total_tokens + queries.usage.total_tokens} tokens"
        )
        scores = queries.embeddings @ docs.embeddings.T
        hits = 0
        for (query, expected), row in zip(QUERIES, scores, strict=True):
            order = np.argsort(-row)[:3]
            hits += int(order[0] == expected)
            mark = "ok " if order[0] == expected else "-- "
            print(f"\n{mark}query: {query!r}")
            for rank, idx in enumerate(order, 1):
                print(f"     {rank}. {row[idx]:.3f}  {CORPUS[idx][:72]}")
        print(
            f"\nstats: {client.stats.requests} requests, retries {client.stats.retries or 'none'}"
        )
    return hits


def langchain_search(conn: dict[str, str]) -> None:
    _banner("2. LangChain: DashScopeEmbeddings + InMemoryVectorStore")
    try:
        from langchain_core.vectorstores import InMemoryVectorStore

        from langchain_dashscope_embed import DashScopeEmbeddings
    except ImportError as exc:
        print(f"skipped ({exc}); install with: pip install 'dashscope-embed[langchain]'")
        return
    emb = DashScopeEmbeddings(model=MODEL, dimension=DIM, **conn)  # type: ignore[arg-type]
    store = InMemoryVectorStore.from_texts(CORPUS, embedding=emb)
    for query, expected in QUERIES[:3]:
        doc = store.similarity_search(query, k=1)[0]
        mark = "ok " if doc.page_content == CORPUS[expected] else "-- "
        print(f"{mark}{query!r} -> {doc.page_content[:70]}")


def llamaindex_search(conn: dict[str, str]) -> None:
    _banner("3. LlamaIndex: DashScopeEmbedding + VectorStoreIndex")
    try:
        from llama_index.core import Document, VectorStoreIndex

        from llama_index_dashscope_embed import DashScopeEmbedding
    except ImportError as exc:
        print(f"skipped ({exc}); install with: pip install 'dashscope-embed[llamaindex]'")
        return
    embed_model = DashScopeEmbedding(model_name=MODEL, dimension=DIM, **conn)  # type: ignore[arg-type]
    index = VectorStoreIndex.from_documents(
        [Document(text=t) for t in CORPUS], embed_model=embed_model
    )
    retriever = index.as_retriever(similarity_top_k=1)
    for query, expected in QUERIES[2:]:
        node = retriever.retrieve(query)[0]
        mark = "ok " if node.get_content() == CORPUS[expected] else "-- "
        print(f"{mark}{query!r} -> {node.get_content()[:70]}")


SHAPES = {
    "red square": ("red", "square"),
    "blue circle": ("blue", "circle"),
    "green triangle": ("green", "triangle"),
    "yellow circle": ("gold", "circle"),
    "purple triangle": ("purple", "triangle"),
}
IMAGE_QUERIES = ["a red square", "a round blue shape", "a green triangle", "something purple"]


def _draw(path: Path, label: str, colour: str, shape: str) -> Path:
    from PIL import Image as PILImage
    from PIL import ImageDraw
    from PIL.PngImagePlugin import PngInfo

    img = PILImage.new("RGB", (96, 96), "white")
    pen = ImageDraw.Draw(img)
    if shape == "square":
        pen.rectangle((16, 16, 80, 80), fill=colour)
    elif shape == "circle":
        pen.ellipse((16, 16, 80, 80), fill=colour)
    else:
        pen.polygon([(48, 10), (86, 84), (10, 84)], fill=colour)
    info = PngInfo()
    info.add_text("label", label)  # only the emulator reads it; the real model sees pixels
    img.save(path, pnginfo=info)
    return path


def image_search(conn: dict[str, str]) -> None:
    """Text → image search in the multimodal space; local files are sent inline."""
    _banner("4. multimodal: text -> image search (tongyi-embedding-vision-plus)")
    try:
        import PIL  # noqa: F401
    except ImportError:
        print("skipped (Pillow missing); install with: pip install 'dashscope-embed[images]'")
        return
    from dashscope_embed import Image

    with tempfile.TemporaryDirectory() as tmp, DashScopeClient(**conn) as client:  # type: ignore[arg-type]
        paths = [
            _draw(Path(tmp) / f"{i}.png", label, colour, shape)
            for i, (label, (colour, shape)) in enumerate(SHAPES.items())
        ]
        images = client.embed_multimodal([Image(p) for p in paths])
        queries = client.embed_multimodal(IMAGE_QUERIES)  # plain strings are always texts
    scores = queries.embeddings @ images.embeddings.T
    print(f"{len(paths)} local PNGs embedded inline in {images.usage.requests} request(s)")
    for query, row in zip(IMAGE_QUERIES, scores, strict=True):
        best = int(np.argmax(row))
        print(f"  {query!r:24} -> {list(SHAPES)[best]!r} (cosine {row[best]:.2f})")


NO_CONNECTION = """
Could not reach DashScope at {url} ({error}).

DASHSCOPE_API_KEY is set, so the demo talks to the real service, and this machine cannot reach
it (no network, a proxy, a firewall or a wrong DASHSCOPE_BASE_URL / DASHSCOPE_REGION). To run
the demo offline on the bundled emulator instead, unset the key: `unset DASHSCOPE_API_KEY`
(or run `env -u DASHSCOPE_API_KEY make demo`)."""


def main() -> int:
    conn = dict(connection())
    try:
        hits = core_search(conn)
        langchain_search(conn)
        llamaindex_search(conn)
        image_search(conn)
    except APIConnectionError as exc:  # timeouts too: APITimeoutError is a subclass
        if "base_url" in conn:  # our own emulator went away: nothing the user can fix
            raise
        url = os.environ.get("DASHSCOPE_BASE_URL") or "the DashScope host of your region"
        print(NO_CONNECTION.format(url=url, error=type(exc).__name__), file=sys.stderr)
        return 1
    print(f"\ncore search: {hits}/{len(QUERIES)} queries ranked the expected passage first")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
