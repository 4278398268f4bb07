"""Semantic search over a small FAQ, with and without query/document asymmetry.

text-embedding-v4 is trained for asymmetric retrieval: corpus texts are embedded with
``text_type="document"`` (the default) and searches with ``text_type="query"``, optionally with
an English task ``instruct``. This example ranks the same FAQ for each question three ways and
prints the top hits side by side, so you can see what the two switches change.

Run from the repository root: ``python examples/semantic_search.py``
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from _common import DIMENSION, MODEL, connection

from dashscope_embed import DashScopeClient, TextType

FAQ = [
    "To reset your password, open Settings, choose Security and click Reset password.",
    "Our support team answers emails within 24 hours on working days.",
    "Refunds are paid back to the original payment method within 5 business days.",
    "You can change the delivery address of an order until it ships.",
    "Two-factor authentication asks for a one-time code at every sign-in.",
    "Orders over 50 euros ship for free within the EU.",
    "The mobile app works offline and syncs your data when you reconnect.",
    "Invoices can be downloaded as PDF files from the Billing page.",
]
QUESTIONS = [
    "How do I reset my password?",
    "When will I get my refund?",
    "Where can I download an invoice?",
    "Is shipping free?",
    "Does the app work without internet?",
]
INSTRUCT = "Given a web search query, retrieve relevant passages that answer the query"
TOP_K = 3

Matrix = npt.NDArray[np.float32]
Ranking = dict[str, list[tuple[int, float]]]  # question -> [(FAQ index, cosine), ...] best first


def main() -> dict[str, Ranking]:
    """Rank the FAQ for every question in three modes; return ``{mode: {question: top hits}}``."""
    with DashScopeClient(**connection()) as client:
        faq = client.embed_texts(FAQ, model=MODEL, dimension=DIMENSION).embeddings

        def embed_questions(text_type: TextType, instruct: str | None = None) -> Matrix:
            result = client.embed_texts(
                QUESTIONS, model=MODEL, dimension=DIMENSION, text_type=text_type, instruct=instruct
            )
            return result.embeddings

        questions = {
            "as document": embed_questions("document"),
            "as query": embed_questions("query"),
            "query + instruct": embed_questions("query", INSTRUCT),
        }
    rankings: dict[str, Ranking] = {}
    for mode, vectors in questions.items():
        scores = vectors @ faq.T  # unit vectors: the dot product is the cosine similarity
        rankings[mode] = {
            question: [(int(i), float(row[i])) for i in row.argsort()[::-1][:TOP_K]]
            for question, row in zip(QUESTIONS, scores, strict=True)
        }

    for i, text in enumerate(FAQ):
        print(f"#{i} {text}")
    for question in QUESTIONS:
        print(f"\n{question}")
        for mode, ranking in rankings.items():
            hits = "   ".join(f"#{i} {score:.3f}" for i, score in ranking[question])
            print(f"  {mode:<17} {hits}")
        print(f"  best match: {FAQ[rankings['query + instruct'][question][0][0]]}")
    same = sum(len({r[q][0][0] for r in rankings.values()}) == 1 for q in QUESTIONS)
    print(f"\nTop hit identical in all three modes for {same}/{len(QUESTIONS)} questions.")
    return rankings


if __name__ == "__main__":
    main()
