"""Shared plumbing for the examples: real DashScope when a key is set, else the local emulator.

Every example builds its client as ``DashScopeClient(**connection())``:

* with ``DASHSCOPE_API_KEY`` set, :func:`connection` returns ``{}`` and the client reads the key,
  region and host from the environment as usual (the real service, real vectors);
* without it, the emulator is started once per process on 127.0.0.1 and the examples talk to it
  over HTTP exactly as they would to DashScope. Its vectors are lexical hashes (texts that share
  words are close), NOT the real model, so the numbers printed are only illustrative.
"""

from __future__ import annotations

import atexit
import functools
import os
from typing import TypedDict

import numpy as np
import numpy.typing as npt

__all__ = ["DIMENSION", "MODEL", "Connection", "connection", "unit_rows"]

#: The model and dimension every example uses (v4 is DashScope's current general text model).
MODEL = "text-embedding-v4"
DIMENSION = 512

EMULATOR_NOTICE = (
    "No DASHSCOPE_API_KEY set: running on the local dashscope-embed emulator "
    "(deterministic lexical vectors, NOT the real model)"
)


class Connection(TypedDict, total=False):
    """Keyword arguments for ``DashScopeClient`` and the LangChain / LlamaIndex adapters."""

    api_key: str
    base_url: str


def connection() -> Connection:
    """Return the client keyword arguments for this process, starting the emulator if needed.

    Prints one line saying which backend the examples are talking to (once per process).

    Returns:
        ``{}`` when ``DASHSCOPE_API_KEY`` is set (the client reads the environment), otherwise
        ``{"api_key": "sk-emulator", "base_url": "http://127.0.0.1:PORT"}``.
    """
    return Connection(**_connect())  # a copy: callers may add their own keys


@functools.cache
def _connect() -> Connection:
    if os.environ.get("DASHSCOPE_API_KEY", "").strip():
        from dashscope_embed import DashScopeClient

        with DashScopeClient() as probe:  # resolves region/host exactly as the examples will
            config = probe.config
        region = config.region or "set by base_url"
        print(f"Using the real DashScope service (region {region}, {config.base_url})")
        return {}

    from dashscope_embed.emulator import serve

    server = serve()  # a daemon thread on 127.0.0.1, a free port
    atexit.register(server.stop)  # kept for the whole process, like a real endpoint
    print(EMULATOR_NOTICE)
    return {"api_key": "sk-emulator", "base_url": server.url}


def unit_rows(matrix: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Scale each row to length 1, so that a dot product is a cosine similarity.

    DashScope already returns unit vectors; means and centroids are not, hence this helper.
    """
    rows = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.where(norms == 0.0, 1.0, norms)
