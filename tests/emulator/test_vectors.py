"""The emulator's deterministic vectors, sparse vectors, token counts and number formatting."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dashscope_embed.emulator import count_tokens, sparse_vector, text_vector
from dashscope_embed.emulator._format import format_rows
from dashscope_embed.emulator._sparse import SPARSE_VOCAB
from dashscope_embed.emulator._vectors import projection, text_vectors
from dashscope_embed.emulator._words import features

V4 = "text-embedding-v4"
CORPUS = [
    "Cats love to eat fish and chase mice around the house.",
    "Dogs enjoy long walks in the park and playing fetch.",
    "The stock market fell sharply as investors worried about interest rates.",
    "Simmer the tomato sauce slowly and season it with fresh basil.",
    "The telescope captured images of a distant galaxy in deep space.",
]


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_vector_is_float32_unit_norm_with_the_model_default_dimension() -> None:
    """Without a dimension the vector has the model's default length, float32, L2 norm 1."""
    for model, length in [
        (V4, 1024),
        ("text-embedding-v2", 1536),
        ("qwen3.7-text-embedding", 1024),
    ]:
        vector = text_vector(model, "hello world")
        assert vector.dtype == np.float32
        assert vector.shape == (length,)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)


def test_same_text_same_vector_and_model_changes_it() -> None:
    """The same text gives an identical vector, and another model gives an unrelated one."""
    first = text_vector(V4, "pandas eat bamboo")
    assert np.array_equal(first, text_vector(V4, "pandas eat bamboo"))
    assert abs(cos(first, text_vector("text-embedding-v3", "pandas eat bamboo"))) < 0.2


def test_vectors_do_not_depend_on_the_python_hash_seed() -> None:
    """Another interpreter with a different PYTHONHASHSEED computes the same vector."""
    code = (
        "from dashscope_embed.emulator import text_vector;"
        "print(text_vector('text-embedding-v4', 'stable across processes', dimension=8).tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    here = text_vector(V4, "stable across processes", dimension=8)
    np.testing.assert_array_equal(np.array(json.loads(out), dtype=np.float32), here)


@pytest.mark.parametrize("dimension", [64, 256, 768, 1536])
def test_smaller_dimension_is_the_renormalised_prefix(dimension: int) -> None:
    """A smaller dimension equals the prefix of the full 2048-d vector, renormalised."""
    full = text_vector(V4, "matryoshka dolls nest inside each other", dimension=2048)
    small = text_vector(V4, "matryoshka dolls nest inside each other", dimension=dimension)
    prefix = full[:dimension] / np.linalg.norm(full[:dimension])
    np.testing.assert_allclose(small, prefix, atol=1e-6)


def test_query_and_document_are_close_but_not_identical() -> None:
    """The query vector of a text differs from its document vector, with cosine 0.95-0.995."""
    for text in CORPUS:
        doc = text_vector(V4, text)
        query = text_vector(V4, text, text_type="query")
        assert not np.array_equal(doc, query)
        assert 0.95 < cos(doc, query) < 0.995


def test_instruct_adds_a_small_perturbation() -> None:
    """An instruction changes the query vector slightly (cosine above 0.95)."""
    plain = text_vector(V4, "what do cats eat", text_type="query")
    steered = text_vector(V4, "what do cats eat", text_type="query", instruct="Find the passage")
    assert not np.array_equal(plain, steered)
    assert cos(plain, steered) > 0.95


def test_the_fast_path_matches_the_reference_definition() -> None:
    """text_vector equals normalise(bincount(features) @ R[:, :d]), the documented definition."""
    for text in [*CORPUS, "猫喜欢吃鱼", "!!!", ""]:
        buckets, weights = features(text)
        hashed = np.bincount(buckets, weights=weights, minlength=2048).astype(np.float32)
        reference = hashed @ projection(V4, 2048)[:, :512]
        reference /= np.linalg.norm(reference)
        np.testing.assert_allclose(text_vector(V4, text, dimension=512), reference, atol=1e-5)


def test_a_text_gets_the_same_bits_in_any_batch() -> None:
    """Batching never changes a vector: each row equals the single-text vector bit for bit."""
    texts = [*CORPUS, "the", "", "猫喜欢吃鱼", "dogs"]
    for text_type, instruct in [("document", None), ("query", "Given a query")]:
        batch = text_vectors(V4, texts, dimension=256, text_type=text_type, instruct=instruct)
        reverse = text_vectors(
            V4, texts[::-1], dimension=256, text_type=text_type, instruct=instruct
        )
        for i, text in enumerate(texts):
            single = text_vector(V4, text, dimension=256, text_type=text_type, instruct=instruct)
            assert np.array_equal(batch[i], single)
        assert np.array_equal(reverse[::-1], batch)


def test_semantic_search_ranks_the_matching_sentence_first() -> None:
    """Each topical query ranks its own sentence first among cats/dogs/finance/cooking/space."""
    queries = [
        "what do cats eat",
        "where do dogs like to walk",
        "interest rates and the stock market",
        "how to cook tomato sauce",
        "distant galaxies in space",
    ]
    for model in [V4, "text-embedding-v2", "qwen3.7-text-embedding"]:
        docs = text_vectors(model, CORPUS)
        for expected, query in enumerate(queries):
            scores = docs @ text_vector(model, query, text_type="query")
            assert int(np.argmax(scores)) == expected, (model, query, scores)


def test_shared_words_score_higher_than_unrelated_text() -> None:
    """Texts sharing words (or plural forms) have a higher cosine than unrelated texts."""
    base = text_vector(V4, "the cat sleeps on the sofa")
    assert cos(base, text_vector(V4, "cats sleep on sofas")) > 0.3
    assert cos(base, text_vector(V4, "quarterly revenue exceeded forecasts")) < 0.15
    cjk = text_vector(V4, "猫喜欢吃鱼")
    assert cos(cjk, text_vector(V4, "猫吃鱼")) > cos(cjk, text_vector(V4, "股票市场下跌"))


def test_wordless_text_still_gets_a_unit_vector() -> None:
    """An empty or punctuation-only text gets a finite unit vector rather than NaN."""
    for text in ["", "!!!", "   "]:
        vector = text_vector(V4, text, dimension=64)
        assert np.all(np.isfinite(vector))
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)


def test_dimension_outside_the_model_range_raises() -> None:
    """Asking for more dimensions than the model has is a ValueError."""
    with pytest.raises(ValueError, match=r"dimension must be in \[1, 2048\]"):
        text_vector(V4, "x", dimension=4096)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("   ", 0),
        ("a", 1),
        ("hello world", 4),  # 5 letters -> 2 tokens each
        ("hello, world!", 6),  # punctuation runs count too
        ("代码改变世界", 6),  # one token per CJK character
        ("internationalization", 5),
    ],
)
def test_count_tokens_approximation(text: str, tokens: int) -> None:
    """count_tokens: CJK characters 1 token, other runs ceil(len/4), nothing for whitespace."""
    assert count_tokens(text) == tokens


def test_sparse_vector_has_one_entry_per_word_occurrence() -> None:
    """A repeated word repeats its index; values are 4-decimal weights in (0, 1]."""
    entries = sparse_vector("The cat saw the cat")
    assert [e["token"] for e in entries] == ["the", "cat", "saw", "the", "cat"]
    assert [list(e) for e in entries] == [["index", "value", "token"]] * 5
    assert entries[1]["index"] == entries[4]["index"] != entries[2]["index"]
    assert entries[0]["index"] == entries[3]["index"]
    for entry in entries:
        assert isinstance(entry["index"], int)
        assert 0 <= entry["index"] < SPARSE_VOCAB
        value = entry["value"]
        assert isinstance(value, float)
        assert 0 < value <= 1
        assert round(value, 4) == value
    assert entries[0]["value"] < entries[1]["value"]  # stop words weigh less
    assert [e["token"] for e in sparse_vector("风和日丽")] == ["风", "和", "日", "丽"]


def test_format_rows_writes_plain_decimals_that_parse_back() -> None:
    """Numbers come out without exponents, within 5e-9 of the input, edge values included."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((3, 300)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix[0, :7] = [1.0, -1.0, 0.0, -0.0, 1e-12, -3e-6, 0.00001234]
    rows = format_rows(matrix)
    assert rows[0].startswith(b"[1.000000000,-1.00000000,0.000000000,")
    for row, expected in zip(rows, matrix, strict=True):
        assert b"e" not in row.lower()
        np.testing.assert_allclose(json.loads(row), expected, atol=5e-9)
    assert format_rows(np.zeros((2, 0))) == [b"[]", b"[]"]


def test_format_rows_refuses_values_it_cannot_write() -> None:
    """Values of 10 or more, and NaN, raise instead of producing wrong JSON."""
    with pytest.raises(ValueError, match="finite values"):
        format_rows(np.array([[10.0]]))
    with pytest.raises(ValueError, match="finite values"):
        format_rows(np.array([[np.nan]]))
