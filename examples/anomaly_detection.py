"""Anomaly detection: flag texts that sit far from the centroid of known-normal samples.

The normal samples are product reviews of a coffee machine. A new text is scored by its cosine
distance to their centroid (mean vector, re-scaled to length 1).

The threshold comes from the data, not from a magic number: each normal sample is scored against
the centroid of the *other* samples (leave-one-out, because a sample pulls its own centroid
towards itself and would look closer than a genuinely new text), and the threshold is the mean of
those distances plus three standard deviations. Cosine distances of one model and one domain sit
on their own scale (the real model and the emulator differ a lot), so a fixed cut-off like 0.5
would be wrong for one of them; "3 sigma above typical normal" adapts to both.

Run from the repository root: ``python examples/anomaly_detection.py``
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from _common import DIMENSION, MODEL, connection, unit_rows
from dashscope_embed import DashScopeClient

NORMAL = [
    "The coffee machine makes a great espresso every morning",
    "Easy to clean coffee machine, and the espresso is great",
    "Great espresso machine, the coffee tastes rich and hot",
    "The machine heats up fast and the espresso crema is great",
    "Good coffee machine for the price, a bit noisy when grinding beans",
    "The coffee machine's milk frother makes creamy foam for a latte",
    "Coffee tastes great, the water tank of the machine is easy to fill",
    "The grinder is noisy but the coffee from this machine is excellent",
    "This coffee machine makes a hot espresso in under a minute",
    "The espresso from this coffee machine beats my local cafe",
    "Descaling the coffee machine is easy and the espresso stays great",
    "The coffee machine grinds fresh beans and brews a strong espresso",
]
INCOMING = [
    "Great coffee machine, the espresso is hot and the frother is easy to clean",
    "Noisy grinder, but this machine makes a good cup of coffee",
    "xq7 zzkv!! plorb grnnt 0x1f vvqq ####",  # garbled input (encoding error, spam, a bot)
    "The football team won the league match last night",  # a review posted to the wrong product
]


class Report(TypedDict):
    threshold: float
    normal: dict[str, float]  # leave-one-out cosine distance of each normal sample
    incoming: dict[str, float]  # cosine distance of each incoming text to the centroid
    anomalies: list[str]  # the incoming texts beyond the threshold


def main() -> Report:
    """Score the incoming texts against the normal centroid and print a verdict for each."""
    with DashScopeClient(**connection()) as client:
        normal = client.embed_texts(NORMAL, model=MODEL, dimension=DIMENSION).embeddings
        incoming = client.embed_texts(INCOMING, model=MODEL, dimension=DIMENSION).embeddings

    everyone_else = (normal.sum(axis=0) - normal) / (len(NORMAL) - 1)  # row i: mean without i
    loo = 1.0 - np.sum(normal * unit_rows(everyone_else), axis=1)
    threshold = float(loo.mean() + 3.0 * loo.std(ddof=1))
    centroid = unit_rows(normal.mean(axis=0))
    distances = 1.0 - incoming @ centroid

    print(f"Normal samples: leave-one-out cosine distance {loo.mean():.3f} ± {loo.std(ddof=1):.3f}")
    print(f"Threshold (mean + 3 std): {threshold:.3f}\n")
    anomalies = []
    for text, distance in zip(INCOMING, distances, strict=True):
        if distance > threshold:
            anomalies.append(text)
        verdict = "ANOMALY" if distance > threshold else "normal "
        print(f"{verdict}  distance {distance:.3f}  {text}")
    return Report(
        threshold=threshold,
        normal={t: float(d) for t, d in zip(NORMAL, loo, strict=True)},
        incoming={t: float(d) for t, d in zip(INCOMING, distances, strict=True)},
        anomalies=anomalies,
    )


if __name__ == "__main__":
    main()
