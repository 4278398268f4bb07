"""How the emulator reads a text: tokens, token counts and the hashed features of each word.

Deterministic and dependency-free, so vectors and token counts are the same on every machine.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re

import numpy as np
import numpy.typing as npt

__all__ = ["HASH_BUCKETS", "STOP_WORDS", "Vector", "count_tokens", "features", "tokenize"]


Vector = npt.NDArray[np.float32]


#: Buckets of the hashed feature space (rows of each model's projection matrix).
HASH_BUCKETS = 2048


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


@functools.lru_cache(maxsize=1024)
def _perturbation(label: str) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """A unit vector in feature space over 16 buckets picked by ``label``'s hash."""
    raw = np.frombuffer(hashlib.blake2b(label.encode(), digest_size=64).digest(), dtype="<u2")
    buckets = (raw[:16] % HASH_BUCKETS).astype(np.intp)
    weights = raw[16:].astype(np.float64) / 32767.5 - 1.0
    return buckets, (weights / np.linalg.norm(weights)).astype(np.float32)
