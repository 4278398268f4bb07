"""Content-based recommendation: rank a catalogue by its similarity to a user's reading history.

The user profile is the mean of the vectors of the articles they read, re-scaled to length 1;
every unread article is scored by its cosine with that profile. No training, no interaction data:
a reasonable cold-start recommender, and a strong feature for a learned one later.

Run from the repository root: ``python examples/recommendation.py``
"""

from __future__ import annotations

from _common import DIMENSION, MODEL, connection, unit_rows

from dashscope_embed import DashScopeClient

CATALOGUE = {
    "hike-01": "Ten easy hiking trails for a weekend in the mountains",
    "cook-01": "A quick tomato pasta sauce for busy weeknights",
    "code-01": "Getting started with Python type hints and mypy",
    "hike-02": "How to pack a light backpack for a multi-day hiking trip",
    "cook-02": "Baking sourdough bread at home: a beginner's guide",
    "hike-03": "Choosing a tent and sleeping bag for mountain camping",
    "code-02": "Writing fast numpy code without Python loops",
    "hike-04": "Trail running shoes versus hiking boots on rocky mountain trails",
    "cook-03": "Five vegetarian curry recipes with pantry spices",
    "code-03": "A practical guide to Git branches and rebasing",
    "hike-05": "Camping by a mountain trail: how to leave no trace",
    "cook-04": "How to sharpen a kitchen knife and keep it sharp",
    "code-04": "Testing Python code with pytest fixtures",
    "hike-06": "Reading a trail map before a hiking trip in the mountains",
}
HISTORY = ["hike-01", "hike-02", "hike-03"]  # what this user has read
TOP_K = 3


def main() -> list[tuple[str, float]]:
    """Recommend ``TOP_K`` unread articles; return ``[(article id, cosine), ...]`` best first."""
    ids = list(CATALOGUE)
    with DashScopeClient(**connection()) as client:
        # Catalogue vectors are computed once and would normally live in a vector store.
        vectors = client.embed_texts(list(CATALOGUE.values()), model=MODEL, dimension=DIMENSION)
    items = vectors.embeddings
    profile = unit_rows(items[[ids.index(i) for i in HISTORY]].mean(axis=0))
    scores = items @ profile
    ranked = [(ids[i], float(scores[i])) for i in scores.argsort()[::-1] if ids[i] not in HISTORY]

    print("Read:")
    for item in HISTORY:
        print(f"  {item}  {CATALOGUE[item]}")
    print(f"Recommended (cosine with the mean of {len(HISTORY)} history vectors):")
    for item, score in ranked[:TOP_K]:
        print(f"  {item}  {score:.3f}  {CATALOGUE[item]}")
    least, least_score = ranked[-1]
    print(f"Least similar: {least}  {least_score:.3f}  {CATALOGUE[least]}")
    return ranked[:TOP_K]


if __name__ == "__main__":
    main()
