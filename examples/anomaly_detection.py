"""Anomaly detection: flag texts that sit far from the centroid of known-normal samples.

The normal samples are reviews of a coffee machine; a new text is scored by its cosine distance to
their centroid (mean vector, re-scaled to length 1).

The threshold comes from the data: each normal sample is scored against the centroid of the
*other* samples (leave-one-out: a sample pulls its own centroid towards itself, so it would look
closer than a genuinely new text), and the cut-off is the mean of those distances plus three
standard deviations. Distances sit on a different scale for each model and domain (the real model
and the emulator differ a lot), so a fixed cut-off such as 0.5 would be wrong for one of them.

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

    anomalies = [text for text, d in zip(INCOMING, distances, strict=True) if d > threshold]

    print(
        f"Normal samples, leave-one-out cosine distance: mean {loo.mean():.3f}, "
        f"std {loo.std(ddof=1):.3f}, max {loo.max():.3f}"
    )
    print(f"Threshold (mean + 3 std): {threshold:.3f}\n")
    for text, distance in zip(INCOMING, distances, strict=True):
        verdict = "ANOMALY" if text in anomalies else "normal "
        print(f"{verdict}  distance {distance:.3f}  {text}")
    return Report(
        threshold=threshold,
        normal={t: float(d) for t, d in zip(NORMAL, loo, strict=True)},
        incoming={t: float(d) for t, d in zip(INCOMING, distances, strict=True)},
        anomalies=anomalies,
    )


if __name__ == "__main__":
    main()
