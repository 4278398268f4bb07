"""The sparse halves of ``output_type="dense&sparse"`` calls, kept for the sparse side.

A hybrid index embeds each text twice over: the index asks the dense model, then the vector
store asks its sparse function for the same text (Qdrant's ``sparse_doc_fn`` /
``sparse_query_fn``, Milvus's ``encode_documents`` / ``encode_queries``). When the dense model
asked for both outputs, the sparse function finds the vector here and sends nothing. A bounded
LRU: a text that has been evicted (or never seen) is simply fetched again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from dashscope_embed import SparseVector

#: Entries kept. VectorStoreIndex embeds and then stores nodes 2,048 at a time, so this covers it.
STASH_CAPACITY = 8192

Key = tuple[str, str | None, str | None, str]


class SparseStash:
    """A thread-safe LRU of merged sparse vectors keyed by (model, text_type, instruct, text)."""

    def __init__(self, capacity: int = STASH_CAPACITY) -> None:
        self._items: OrderedDict[Key, SparseVector] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, int]:
        return {"capacity": self._capacity}  # a pickled copy starts empty

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(state["capacity"])  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._items)

    def put(
        self,
        prefix: tuple[str, str | None, str | None],
        texts: Sequence[str],
        vectors: Sequence[SparseVector],
    ) -> None:
        """Remember one merged vector per text (tokens dropped to keep memory small)."""
        with self._lock:
            for text, vec in zip(texts, vectors, strict=True):
                merged = vec.merged()
                self._items[(*prefix, text)] = SparseVector(merged.indices, merged.values)
                self._items.move_to_end((*prefix, text))
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def get(
        self, prefix: tuple[str, str | None, str | None], texts: Sequence[str]
    ) -> list[SparseVector | None]:
        """The stored vector of each text, or ``None`` where it must be fetched."""
        with self._lock:
            found = [self._items.get((*prefix, t)) for t in texts]
            for text, vec in zip(texts, found, strict=True):
                if vec is not None:
                    self._items.move_to_end((*prefix, text))
            return found
