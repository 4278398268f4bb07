"""The emulator's sparse vectors: weighted token ids, as ``output_type`` sparse returns them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._words import (
    _BIGRAM_WEIGHT,
    _PERTURBATION,
    HASH_BUCKETS,
    STOP_WORDS,
    Vector,
    _mix_array,
    _perturbation,
    _seed,
    features,
    tokenize,
)

__all__ = ["SPARSE_VOCAB", "sparse_vector"]


#: Size of the sparse vocabulary (the real sparse indices are token ids of a ~250k vocabulary).
SPARSE_VOCAB = 250_002


def _extra_features(
    text: str, entries: list[tuple[int, Vector, float]], query: bool, instruct: str | None
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]] | None:
    """Raw-text fallback features and the query / instruct perturbations of one text, if any."""
    buckets: list[npt.NDArray[np.intp]] = []
    weights: list[npt.NDArray[np.float32]] = []
    norm_sq = sum(entry[2] for entry in entries) + max(len(entries) - 1, 0) * _BIGRAM_WEIGHT**2
    if not entries:  # no words at all: features from the raw characters
        raw_buckets, raw_weights = features(text)
        buckets.append(np.array(raw_buckets, dtype=np.intp))
        weights.append(np.array(raw_weights, dtype=np.float32))
        norm_sq = 1.0
    # The perturbation size follows the text's feature norm (ignoring bucket collisions).
    scale = np.float32(_PERTURBATION * np.sqrt(norm_sq))
    labels = (["query:" + text] if query else []) + (["instruct:" + instruct] if instruct else [])
    for label in labels:
        label_buckets, label_weights = _perturbation(label)
        buckets.append(label_buckets)
        weights.append(scale * label_weights)
    if not buckets:
        return None
    return np.concatenate(buckets), np.concatenate(weights)


def _bigrams(
    hashes: list[int], counts: list[int]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """Bucket and signed weight of every bigram of consecutive kept words, text after text."""
    if len(hashes) < 2:
        return np.zeros(0, np.intp), np.zeros(0, np.float32)
    values = np.array(hashes, dtype=np.uint64)
    mixed = _mix_array(values[:-1], values[1:])
    # A pair is a bigram unless its right word starts a new text.
    starts = np.cumsum(np.array(counts[:-1], dtype=np.intp))
    valid = np.ones(len(hashes) - 1, dtype=bool)
    valid[starts[(starts > 0) & (starts < len(hashes))] - 1] = False
    mixed = mixed[valid]
    buckets = (mixed % np.uint64(HASH_BUCKETS)).astype(np.intp)
    weights = np.where(mixed >> np.uint64(63), _BIGRAM_WEIGHT, -_BIGRAM_WEIGHT).astype(np.float32)
    return buckets, weights


def _add_segments(
    out: npt.NDArray[np.float32], rows: npt.NDArray[np.float32] | None, counts: list[int]
) -> None:
    """``out[i] += sum of the next counts[i] rows``, each segment summed sequentially on its own.

    (``np.add.reduceat`` along axis 0 would do the same but is ~30x slower.)
    """
    if rows is None:
        return
    start = 0
    for i, count in enumerate(counts):
        if count:
            out[i] += rows[start : start + count].sum(axis=0)
            start += count


def _sparse_weight(token: str) -> float:
    jitter = (_seed("sparse:" + token) % 1000) / 1000.0
    if token in STOP_WORDS:
        value = 0.02 + 0.08 * jitter
    else:
        value = min(1.0, 0.3 + 0.08 * len(token) + 0.2 * jitter)
    return round(value, 4)


def sparse_vector(text: str) -> list[dict[str, int | float | str]]:
    """Return a DashScope-shaped sparse embedding: one entry per word occurrence.

    A repeated word repeats its index (the real service may do the same, so clients must merge
    entries). ``index`` is a stable hash of the token modulo :data:`SPARSE_VOCAB`; ``value`` is a
    tf-idf-like weight in ``(0, 1]`` rounded to 4 decimals (stop words weigh little).

    Args:
        text: The text to embed.

    Returns:
        ``[{"index": int, "value": float, "token": str}, ...]`` in text order.
    """
    return [
        {"index": _seed("token:" + tok) % SPARSE_VOCAB, "value": _sparse_weight(tok), "token": tok}
        for tok in tokenize(text)
    ]
