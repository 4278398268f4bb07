"""Deterministic lexical vectors and token counts for the emulator.

These are NOT the real model's vectors. They are feature-hashing vectors: lower-cased word
unigrams (weight 1.0), word bigrams (0.5) and boundary-marked character trigrams (0.3) — for CJK
text, single characters and character bigrams — are hashed with blake2b into
:data:`HASH_BUCKETS` signed buckets and projected with a fixed Gaussian matrix per model. Texts
that share words get a higher cosine, which is all a ranking demo or a test needs. Nothing uses
Python's salted ``hash``, so a text gets the same vector in every process.

Why a projection instead of hashing straight into ``dimension`` buckets: a smaller dimension is the
prefix of the full vector (as Matryoshka-trained models such as text-embedding-v4 behave), and a
prefix of a random projection is itself a random projection, so it keeps similarity.

Speed: the projected vector of each word (its unigram and trigrams) is cached per model and
dimension, so a text costs one small sum plus its bigram rows instead of a gather of ~10 matrix
rows per word. Words are always summed the same way, cached or not, so the cache never changes a
result."""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from dashscope_embed._models import MODELS

from ._sparse import _add_segments, _bigrams, _extra_features
from ._words import HASH_BUCKETS, Vector, _kept_words, _seed, _word

__all__ = ["WordEntry", "projection", "text_vector", "text_vectors"]


_PROJECTIONS: dict[tuple[str, int], Vector] = {}


_PROJECTIONS_LOCK = threading.Lock()


def projection(model: str, width: int) -> Vector:
    """The fixed ``HASH_BUCKETS x width`` Gaussian matrix of ``model`` (built once, read-only)."""
    key = (model, width)
    matrix = _PROJECTIONS.get(key)
    if matrix is None:
        with _PROJECTIONS_LOCK:
            matrix = _PROJECTIONS.get(key)
            if matrix is None:
                rng = np.random.default_rng(_seed("projection:" + model))
                matrix = rng.standard_normal((HASH_BUCKETS, width), dtype=np.float32)
                matrix.flags.writeable = False
                _PROJECTIONS[key] = matrix
    return matrix


WordEntry = tuple[int, Vector, float]


# Per (model, width, dimension): word -> (word hash, projected unigram+trigrams, squared norm).
# A plain dict is several times cheaper per lookup than lru_cache's 4-part key; when one grows
# past _WORD_CACHE_BYTES of vectors it is simply emptied (64 MiB: 65,536 words at 256 dimensions,
# 16,384 at 1,024). Results never depend on the cache: a word's vector is computed the same way
# every time.
_WORD_TABLES: dict[tuple[str, int, int], dict[str, WordEntry]] = {}


_WORD_CACHE_BYTES = 64 << 20


def _word_table(model: str, width: int, dimension: int) -> dict[str, WordEntry]:
    key = (model, width, dimension)
    table = _WORD_TABLES.get(key)
    if table is None or len(table) * dimension * 4 >= _WORD_CACHE_BYTES:
        table = _WORD_TABLES[key] = {}
    return table


def _word_vector(model: str, width: int, dimension: int, word: str) -> WordEntry:
    """``(word hash, projected unigram+trigrams, squared feature norm)`` of one word."""
    value, buckets, weights = _word(word)
    rows = projection(model, width)[np.array(buckets, dtype=np.intp), :dimension]
    vector: Vector = np.array(weights, dtype=np.float32) @ rows
    vector.flags.writeable = False
    return value, vector, sum(w * w for w in weights)


def text_vector(
    model: str,
    text: str,
    *,
    dimension: int | None = None,
    text_type: str = "document",
    instruct: str | None = None,
    max_dimension: int | None = None,
) -> Vector:
    """Return the emulator's deterministic unit vector for ``text``.

    Args:
        model: Model name; it seeds the projection, so two models give unrelated vectors.
        text: The text to embed.
        dimension: Length of the result: the prefix of the full ``max_dimension`` vector,
            renormalised. ``None`` gives the model's default dimension, like the service.
        text_type: ``"query"`` mixes in a small text-specific perturbation so a query and the same
            text as a document are close (cosine ≈ 0.99) but not identical, like the real service.
        instruct: A task instruction; adds another small perturbation derived from its hash (the
            server passes it only where the real service honours it: query texts, v4-class models).
        max_dimension: Length of the full vector. Defaults to the catalog's largest dimension for
            ``model`` (1024 for names the catalog does not know).

    Returns:
        A float32 array of length ``dimension`` with L2 norm 1.

    Raises:
        ValueError: If ``dimension`` is not in ``[1, max_dimension]``.
    """
    vectors = text_vectors(
        model,
        [text],
        dimension=dimension,
        text_type=text_type,
        instruct=instruct,
        max_dimension=max_dimension,
    )
    vector: Vector = vectors[0]
    return vector


def text_vectors(
    model: str,
    texts: list[str],
    *,
    dimension: int | None = None,
    text_type: str = "document",
    instruct: str | None = None,
    max_dimension: int | None = None,
) -> npt.NDArray[np.float32]:
    """Return :func:`text_vector` for every text as one ``(len(texts), dimension)`` matrix.

    The numpy work is shared across the batch, but every row is summed on its own, in a fixed
    order, so a text gets bit-for-bit the same vector whatever batch it arrives in.
    """
    spec = MODELS.get(model)
    if max_dimension is None:
        max_dimension = spec.max_dimension if spec is not None else 1024
    if dimension is None:
        dimension = spec.default_dimension if spec is not None else min(1024, max_dimension)
    if not 1 <= dimension <= max_dimension:
        raise ValueError(f"dimension must be in [1, {max_dimension}], got {dimension}")
    if not texts:
        return np.zeros((0, dimension), dtype=np.float32)
    # Rows are computed per text (see below), so a cached row is bit-for-bit what a fresh
    # computation would give: the cache only saves the emulator's CPU when texts come again.
    cache = _row_table((model, max_dimension, dimension, text_type, instruct))
    rows = [cache.get(text) for text in texts]
    todo = [i for i, row in enumerate(rows) if row is None]
    if todo:
        fresh = _compute_rows(
            model, [texts[i] for i in todo], max_dimension, dimension, text_type, instruct
        )
        for i, row in zip(todo, fresh, strict=True):
            row.flags.writeable = False
            rows[i] = cache[texts[i]] = row
    return np.stack(rows)  # type: ignore[arg-type]


# Per (model, width, dimension, text_type, instruct): text -> its unit row. Emptied, like the
# word tables, when it holds _ROW_CACHE_BYTES of vectors (65,536 rows at 256 dimensions).
_ROW_TABLES: dict[tuple[str, int, int, str, str | None], dict[str, Vector]] = {}


_ROW_CACHE_BYTES = 64 << 20


def _row_table(key: tuple[str, int, int, str, str | None]) -> dict[str, Vector]:
    table = _ROW_TABLES.get(key)
    if table is None or len(table) * key[2] * 4 >= _ROW_CACHE_BYTES:
        table = _ROW_TABLES[key] = {}
    return table


def _compute_rows(
    model: str,
    texts: list[str],
    max_dimension: int,
    dimension: int,
    text_type: str,
    instruct: str | None,
) -> npt.NDArray[np.float32]:
    """The uncached work of :func:`text_vectors`, one row per text."""
    width = max_dimension
    # Everything is linear in feature space up to the final normalisation, so each row is exactly
    # the renormalised prefix of the full-width vector (perturbations included).
    word_vectors: list[Vector] = []
    word_counts: list[int] = []
    hashes: list[int] = []
    extras: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]] | None] = []
    query = text_type == "query"
    table = _word_table(model, width, dimension)
    for text in texts:
        entries: list[WordEntry] = []
        for word in _kept_words(text):
            entry = table.get(word)
            if entry is None:
                entry = table[word] = _word_vector(model, width, dimension, word)
            entries.append(entry)
        word_vectors += [entry[1] for entry in entries]
        hashes += [entry[0] for entry in entries]
        word_counts.append(len(entries))
        needs_extra = query or instruct or not entries
        extras.append(_extra_features(text, entries, query, instruct) if needs_extra else None)
    out = np.zeros((len(texts), dimension), dtype=np.float32)
    _add_segments(out, np.array(word_vectors) if word_vectors else None, word_counts)
    # Per text: its bigram rows, then its perturbation rows, always in that order.
    bigram_buckets, bigram_weights = _bigrams(hashes, word_counts)
    buckets: list[npt.NDArray[np.intp]] = []
    weights: list[npt.NDArray[np.float32]] = []
    counts: list[int] = []
    offset = 0
    for word_count, extra in zip(word_counts, extras, strict=True):
        count = max(word_count - 1, 0)
        buckets.append(bigram_buckets[offset : offset + count])
        weights.append(bigram_weights[offset : offset + count])
        offset += count
        if extra is not None:
            buckets.append(extra[0])
            weights.append(extra[1])
            count += len(extra[0])
        counts.append(count)
    rows = np.concatenate(buckets)
    if rows.size:
        gathered = projection(model, width)[rows, :dimension] * np.concatenate(weights)[:, None]
        _add_segments(out, gathered, counts)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out
