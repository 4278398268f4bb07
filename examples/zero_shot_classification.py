"""Zero-shot classification: route support messages to the label whose description fits best.

No training examples: each label is described in one sentence, the descriptions are embedded as
documents, and each message (embedded as a query, with a task instruction) takes the label with
the highest cosine. The gap to the runner-up is a cheap confidence signal: send small gaps to a
human, or add a few labelled examples per class later.

Run from the repository root: ``python examples/zero_shot_classification.py``
"""

from __future__ import annotations

from _common import DIMENSION, MODEL, connection

from dashscope_embed import DashScopeClient

LABELS = {
    "billing": "Billing: invoices, charges, payments, refunds and subscription prices",
    "shipping": "Shipping: delivery of an order, parcel tracking, couriers and delivery delays",
    "technical": "Technical problem: the app crashes, shows an error, or a feature does not work",
    "account": "Account access: login, password reset, sign-in codes and locked accounts",
}
MESSAGES = [  # (expected label, message); the expected label is only used to score the result
    ("billing", "I was charged twice for the same invoice, please refund one payment"),
    ("shipping", "My parcel has not arrived and the tracking page shows no delivery update"),
    ("technical", "The app crashes with an error every time I open the camera feature"),
    ("account", "I cannot login: the password reset email never arrives"),
    ("billing", "Why did my subscription price go up on this month's invoice?"),
    ("shipping", "The courier left my order at the wrong address, delivery failed"),
    ("account", "My account is locked after too many sign-in attempts"),
    ("technical", "Export does not work: the app shows error 500 when I save"),
]
INSTRUCT = "Given a customer support message, retrieve the category description that matches it"


def main() -> list[tuple[str, str, float, float]]:
    """Classify every message; return ``[(message, label, cosine, gap to runner-up), ...]``."""
    names = list(LABELS)
    texts = [message for _, message in MESSAGES]
    with DashScopeClient(**connection()) as client:
        labels = client.embed_texts(list(LABELS.values()), model=MODEL, dimension=DIMENSION)
        messages = client.embed_texts(
            texts, model=MODEL, dimension=DIMENSION, text_type="query", instruct=INSTRUCT
        )
    scores = messages.embeddings @ labels.embeddings.T  # (messages, labels) cosine similarities

    predictions = []
    for (expected, message), row in zip(MESSAGES, scores, strict=True):
        best, runner_up = row.argsort()[::-1][:2]
        gap = float(row[best] - row[runner_up])
        predictions.append((message, names[best], float(row[best]), gap))
        mark = "ok" if names[best] == expected else f"expected {expected}"
        print(f"{names[best]:<10} cos {row[best]:.3f}  gap {gap:.3f}  {message}  [{mark}]")
    correct = sum(p[1] == e for p, (e, _) in zip(predictions, MESSAGES, strict=True))
    print(f"\n{correct}/{len(MESSAGES)} messages got their expected label.")
    return predictions


if __name__ == "__main__":
    main()
