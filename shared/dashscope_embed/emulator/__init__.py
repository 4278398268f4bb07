"""A local emulator of the DashScope embedding API, for tests, benchmarks and offline demos.

It speaks the wire protocol of ``../shared/docs/dashscope-api.md``: the native text-embedding
endpoint and the OpenAI-compatible ``/compatible-mode/v1/embeddings``, with the real service's
validation messages, error envelopes, request ids and RPM/TPM throttling, plus injectable latency,
500s and dropped connections.

**The vectors are NOT the real model's vectors.** They are deterministic lexical hashes (word,
bigram and character-trigram features projected to the model's dimension): texts that share words
score a higher cosine, which is good enough for ranking demos and tests, and the same text always
gets the same vector. Token counts are an approximation too.

Use it in-process through an httpx transport (no sockets)::

    emu = Emulator(EmulatorConfig(rpm=600))
    client = httpx.Client(transport=emu.transport(), base_url="https://dashscope.aliyuncs.com")

or on a loopback port::

    with serve() as server:
        ...  # point a client at server.url

or from a shell: ``python -m dashscope_embed.emulator --port 8123``.

With every client pointed at it (ours, the dashscope SDK, the openai SDK; see ``_switch.py``)::

    with emulated(rpm=600) as emu:
        ...  # DashScopeClient(), dashscope.TextEmbedding.call(...), openai.OpenAI() all hit emu

In pytest, the ``dashscope_emulator`` fixture and marker do the same (``pytest_plugin.py``).
Faults by endpoint are :class:`ChaosRule` s (config, ``--chaos``, ``emu.add_chaos(...)``, or
``POST /_emulator/chaos``).
"""

from __future__ import annotations

from dashscope_embed.emulator._app import Emulator
from dashscope_embed.emulator._chaos import ChaosRule
from dashscope_embed.emulator._records import EmulatorStats, RecordedRequest
from dashscope_embed.emulator._server import EmulatorServer, serve
from dashscope_embed.emulator._shapes import EmulatorConfig, EmuRequest, EmuResponse
from dashscope_embed.emulator._switch import EmulatorSession, client_env, emulated
from dashscope_embed.emulator._transport import EmulatorTransport

from ._mm_vectors import image_label, image_vector, multimodal_vector
from ._sparse import sparse_vector
from ._vectors import text_vector
from ._words import count_tokens

__all__ = [
    "ChaosRule",
    "EmuRequest",
    "EmuResponse",
    "Emulator",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorSession",
    "EmulatorStats",
    "EmulatorTransport",
    "RecordedRequest",
    "client_env",
    "count_tokens",
    "emulated",
    "image_label",
    "image_vector",
    "multimodal_vector",
    "serve",
    "sparse_vector",
    "text_vector",
]
