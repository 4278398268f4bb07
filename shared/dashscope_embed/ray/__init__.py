"""Scale out with Ray Data: embed a corpus on many workers under one account-wide quota.

::

    import ray
    from dashscope_embed.ray import DashScopeEmbedder, SharedQuota

    ray.init()
    quota = SharedQuota(rpm=1_800)                 # the account's limit, shared by every worker
    ds = ray.data.read_parquet("s3://bucket/docs/").map_batches(
        DashScopeEmbedder,
        fn_constructor_kwargs={"quota": quota, "dimension": 512, "on_error": "column"},
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=4),
        num_cpus=0.25,
    )

* :class:`DashScopeEmbedder`: the callable class for ``map_batches`` (one client per worker).
* :class:`SharedQuota`: a Ray actor holding the core throttle for the whole job; workers lease
  permits from it in bulk (:class:`LeasedThrottle`) and report their 429s back.
* :func:`embed_files`: read Parquet/JSONL/CSV → embed → write Parquet, resumable by id.

Needs the ``ray`` extra (``pip install "dashscope-embed[ray]"``); ``import dashscope_embed``
never imports Ray.
"""

from __future__ import annotations

try:
    import ray
    import ray.data  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'dashscope_embed.ray needs Ray Data: pip install "dashscope-embed[ray]" '
        '(or pip install "ray[data]>=2.40")'
    ) from exc

from dashscope_embed.ray._embedder import DashScopeEmbedder, OnError
from dashscope_embed.ray._pipeline import (
    STATUS_COLUMN,
    EmbedFilesReport,
    SourceFormat,
    embed_files,
)
from dashscope_embed.ray._shared import SharedQuota

from ._quota import LeasedThrottle
from ._state import QuotaState, QuotaStats

__all__ = [
    "STATUS_COLUMN",
    "DashScopeEmbedder",
    "EmbedFilesReport",
    "LeasedThrottle",
    "OnError",
    "QuotaState",
    "QuotaStats",
    "SharedQuota",
    "SourceFormat",
    "embed_files",
]
