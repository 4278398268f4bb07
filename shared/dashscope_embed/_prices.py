"""List prices of the text embedding models, for ``--dry-run`` cost estimates only.

Nothing here is sent on the wire or used to bill: it turns an estimated token count into an
estimated price before a job is started. Prices change; every figure below is the list price
the API reference recorded, **not** a quote.

Source: ``shared/docs/dashscope-api.md`` §2.5 ("Prices … [DOC]") and §5a ("Price: 50% of
real-time for successful requests; failed lines are not billed"), which cite
https://help.aliyun.com/zh/model-studio/text-embedding-synchronous-api (Beijing, CNY),
https://www.alibabacloud.com/help/en/model-studio/text-embedding-synchronous-api (Singapore, USD)
and https://www.alibabacloud.com/help/en/model-studio/openai-compatible-batch-file-input (Batch).
The reference gives no date for its price figures, so they are shown as "list price as of
:data:`PRICES_AS_OF`, verify" with that page: check it before relying on an estimate.

Update: change :data:`PRICES` and :data:`PRICES_AS_OF` together, citing the page read.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRICES", "PRICES_AS_OF", "PRICE_SOURCE", "Price", "price_for"]

#: When the figures below were copied from the API reference (which itself gives no date).
PRICES_AS_OF = "2026-12-01"
#: Where to verify them.
PRICE_SOURCE = "https://help.aliyun.com/zh/model-studio/text-embedding-synchronous-api"


@dataclass(frozen=True)
class Price:
    """Price per million input tokens in one region.

    Attributes:
        currency: ``"CNY"`` or ``"USD"``.
        realtime: Real-time (synchronous) price per 1M tokens.
        batch: Batch File API price per 1M tokens (half of real time), or ``None`` where the
            Batch API does not serve embeddings (Singapore: chat models only, §5a).
        source: The documentation page the figure comes from.
    """

    currency: str
    realtime: float
    batch: float | None
    source: str = PRICE_SOURCE


_INTL = "https://www.alibabacloud.com/help/en/model-studio/text-embedding-synchronous-api"


def _cn(per_1k: float) -> Price:
    return Price("CNY", per_1k * 1000, per_1k * 500)


#: ``(model, region)`` → price. Beijing prices are per 1K tokens in the docs (× 1000 here).
PRICES: dict[tuple[str, str], Price] = {
    ("text-embedding-v4", "cn-beijing"): _cn(0.0005),
    ("text-embedding-v3", "cn-beijing"): _cn(0.0005),
    ("text-embedding-v2", "cn-beijing"): _cn(0.0007),
    ("text-embedding-v1", "cn-beijing"): _cn(0.0007),
    ("qwen3.7-text-embedding", "cn-beijing"): _cn(0.0005),
    ("qwen3.7-text-embedding-flash", "cn-beijing"): _cn(0.000125),
    ("text-embedding-v4", "ap-southeast-1"): Price("USD", 0.07, None, _INTL),
}


def price_for(model: str, region: str | None) -> Price | None:
    """The list price of ``model`` in ``region`` (``None``: Beijing, the default host), or
    ``None`` when the reference lists none."""
    return PRICES.get((model, region or "cn-beijing"))
