"""Clustering short news headlines by topic with scikit-learn's KMeans.

Embeddings turn "group these texts by what they are about" into plain k-means. DashScope vectors
have length 1, so the Euclidean distance k-means minimises ranks pairs exactly like cosine does.
The headlines carry a hidden topic label that is used only to score the result (purity).

Needs scikit-learn (``pip install "dashscope-embed[examples]"``).
Run from the repository root: ``python examples/clustering.py``
"""

from __future__ import annotations

from collections import Counter
from typing import TypedDict

from _common import DIMENSION, MODEL, connection
from sklearn.cluster import KMeans

from dashscope_embed import DashScopeClient

HEADLINES = [  # (topic, headline); the topic is never shown to the model
    ("sports", "Football: the home team wins the league match with a late goal"),
    ("markets", "Stock market rallies as investors cheer strong bank earnings"),
    ("weather", "Weather forecast: heavy rain and strong winds on the coast tonight"),
    ("sports", "Football fans cheer as the team reaches the league cup final"),
    ("markets", "Stock market shares fall as investors fear higher interest rates"),
    ("weather", "Weather forecast warns of a heatwave with record temperatures"),
    ("sports", "The football coach praises his team after a tough league match"),
    ("markets", "Investors sell bank shares as the stock market slides"),
    ("weather", "Weather service forecasts snow and freezing temperatures in the mountains"),
    ("sports", "A late goal decides the football derby between two league rivals"),
    ("markets", "Tech shares lift the stock market as investors return"),
    ("weather", "Storm brings heavy rain and flooding, weather forecast warns"),
    ("sports", "Star striker scores twice as the football team tops the league"),
    ("markets", "Stock market investors await the central bank decision on rates"),
    ("weather", "Weather forecast: sunny skies and mild temperatures this weekend"),
]
N_CLUSTERS = 3


class Clustering(TypedDict):
    clusters: list[list[str]]  # the headlines of each cluster
    topics: list[list[str]]  # their hidden topic labels, in the same order
    purity: float  # share of headlines that sit with their cluster's majority topic


def main() -> Clustering:
    """Cluster the headlines, print each cluster and return it with its purity."""
    topics = [topic for topic, _ in HEADLINES]
    texts = [text for _, text in HEADLINES]
    with DashScopeClient(**connection()) as client:
        vectors = client.embed_texts(texts, model=MODEL, dimension=DIMENSION).embeddings

    kmeans = KMeans(n_clusters=N_CLUSTERS, n_init=10, random_state=0)
    assignment = kmeans.fit_predict(vectors)

    result = Clustering(clusters=[], topics=[], purity=0.0)
    majority = 0
    for cluster in range(N_CLUSTERS):
        members = [i for i, c in enumerate(assignment) if c == cluster]
        counts = Counter(topics[i] for i in members)
        majority += counts.most_common(1)[0][1]
        result["clusters"].append([texts[i] for i in members])
        result["topics"].append([topics[i] for i in members])
        print(f"\nCluster {cluster + 1} ({len(members)} headlines, topics: {dict(counts)})")
        for i in members:
            print(f"  - {texts[i]}")
    result["purity"] = majority / len(texts)
    print(f"\nPurity against the hidden topic labels: {result['purity']:.2f}")
    return result


if __name__ == "__main__":
    main()
