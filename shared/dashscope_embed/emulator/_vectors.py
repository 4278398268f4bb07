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
result.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import threading

import numpy as np
import numpy.typing as npt

from dashscope_embed._models import MODELS

__all__ = [
    "HASH_BUCKETS",
    "SPARSE_VOCAB",
    "STOP_WORDS",
    "count_tokens",
    "features",
    "projection",
    "sparse_vector",
    "text_vector",
    "tokenize",
]

Vector = npt.NDArray[np.float32]

#: Buckets of the hashed feature space (rows of each model's projection matrix).
HASH_BUCKETS = 2048
#: Size of the sparse vocabulary (the real sparse indices are token ids of a ~250k vocabulary).
SPARSE_VOCAB = 250_002
#: Strength of the query / instruct perturbations: cos(query, document) ≈ 1/sqrt(1+0.15²) ≈ 0.99.
_PERTURBATION = 0.15
_BIGRAM_WEIGHT = 0.5
_TRIGRAM_WEIGHT = 0.3

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{_CJK}]")
# One CJK character | a run of other word characters | a run of punctuation.
_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+|[^\\w\\s]+")
_WORD_RE = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")

_STOP_WORDS_TEXT = (
    "a an the of is are was were be been being am what how why when where which who whom whose "
    "do does did doing to in on at for and or but if it its this that these those with as by "
    "from i you he she we they me him her us them my your his our their can could should would "
    "will shall may might must about into onto there here than then so some any all very just "
    "also has have had having not no nor own same too only such more most other s t "
    "的 了 是 在 和 与 吗 呢 吧 啊 我 你 他 她 它 们 这 那 也 就 都 而 及 之"
)
#: Words that carry little meaning; dropped from the dense features so they do not dominate.
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

_M64 = (1 << 64) - 1


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-cased word runs and single CJK characters (no punctuation)."""
    return _WORD_RE.findall(text.lower())


def count_tokens(text: str) -> int:
    """Approximate the model's token count of ``text``.

    An approximation, not the real tokenizer: each CJK character is one token and every other word
    or punctuation run costs ``ceil(len / 4)`` tokens (so at least one). It is deterministic, so
    quotas and the ``[1, max_tokens]`` length check behave the same on every run.

    Args:
        text: Any string.

    Returns:
        The approximate token count; 0 only for a text with no visible characters.
    """
    return sum((len(run) + 3) // 4 for run in _TOKEN_RE.findall(text))


def _stem(word: str) -> str:
    # A light plural strip so "cats" and "cat" share their unigram; trigrams cover the rest.
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _seed(label: str) -> int:
    """A stable 64-bit hash of ``label`` (blake2b; never Python's per-process salted ``hash``)."""
    return int.from_bytes(hashlib.blake2b(label.encode(), digest_size=8).digest(), "little")


def _split(value: int) -> tuple[int, float]:
    return value % HASH_BUCKETS, (1.0 if value >> 63 else -1.0)


def _mix(left: int, right: int) -> int:
    """Combine two 64-bit word hashes into a bigram hash (splitmix64 finaliser; order matters)."""
    z = (left * 0x9E3779B97F4A7C15 + right) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _mix_array(
    left: npt.NDArray[np.uint64], right: npt.NDArray[np.uint64]
) -> npt.NDArray[np.uint64]:
    """:func:`_mix` over arrays (numpy uint64 arithmetic wraps modulo 2**64, as ``& _M64`` does)."""
    z = left * np.uint64(0x9E3779B97F4A7C15) + right
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@functools.lru_cache(maxsize=1 << 16)
def _word(word: str) -> tuple[int, tuple[int, ...], tuple[float, ...]]:
    """``(word hash, buckets, weights)``: the unigram and boundary-marked trigrams of one word."""
    if _CJK_RE.fullmatch(word):
        value = _seed("u:" + word)
        bucket, sign = _split(value)
        return value, (bucket,), (sign,)
    stem = _stem(word)
    value = _seed("u:" + stem)
    bucket, sign = _split(value)
    buckets, weights = [bucket], [sign]
    marked = f"^{stem}$"
    for i in range(len(marked) - 2):
        bucket, weight = _trigram(marked[i : i + 3])
        buckets.append(bucket)
        weights.append(weight)
    return value, tuple(buckets), tuple(weights)


@functools.lru_cache(maxsize=1 << 16)
def _trigram(gram: str) -> tuple[int, float]:
    bucket, sign = _split(_seed("c:" + gram))
    return bucket, _TRIGRAM_WEIGHT * sign


def _kept_words(text: str) -> list[str]:
    words = tokenize(text)
    return [w for w in words if w not in STOP_WORDS] or words


def features(text: str) -> tuple[list[int], list[float]]:
    """Return the hashed features of ``text`` as parallel ``(buckets, signed weights)`` lists.

    This is the reference definition of the dense vector: ``normalise(h @ R[:, :dimension])``
    with ``h = bincount(buckets, weights)`` and ``R = projection(model, width)``
    (:func:`text_vector` computes the same thing faster). Stop words are dropped (unless nothing
    else is left) so "what", "the" or "is" do not dominate; bigrams join consecutive remaining words
    or CJK characters. A text without any word (empty or punctuation only) gets one feature derived
    from its raw characters, so it still has a vector.
    """
    kept = _kept_words(text)
    buckets: list[int] = []
    weights: list[float] = []
    for word in kept:
        _, word_buckets, word_weights = _word(word)
        buckets.extend(word_buckets)
        weights.extend(word_weights)
    hashes = [_word(w)[0] for w in kept]
    for left, right in itertools.pairwise(hashes):
        bucket, sign = _split(_mix(left, right))
        buckets.append(bucket)
        weights.append(_BIGRAM_WEIGHT * sign)
    if not buckets:
        bucket, sign = _split(_seed("raw:" + text))
        buckets.append(bucket)
        weights.append(sign)
    return buckets, weights


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


@functools.lru_cache(maxsize=1024)
def _perturbation(label: str) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """A unit vector in feature space over 16 buckets picked by ``label``'s hash."""
    raw = np.frombuffer(hashlib.blake2b(label.encode(), digest_size=64).digest(), dtype="<u2")
    buckets = (raw[:16] % HASH_BUCKETS).astype(np.intp)
    weights = raw[16:].astype(np.float64) / 32767.5 - 1.0
    return buckets, (weights / np.linalg.norm(weights)).astype(np.float32)


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
