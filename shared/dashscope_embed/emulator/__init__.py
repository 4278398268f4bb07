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
"""

from __future__ import annotations

from dashscope_embed.emulator._app import (
    Emulator,
    EmulatorConfig,
    EmuRequest,
    EmuResponse,
)
from dashscope_embed.emulator._multimodal import image_label, image_vector, multimodal_vector
from dashscope_embed.emulator._server import EmulatorServer, serve
from dashscope_embed.emulator._transport import EmulatorTransport
from dashscope_embed.emulator._vectors import count_tokens, sparse_vector, text_vector

__all__ = [
    "EmuRequest",
    "EmuResponse",
    "Emulator",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorTransport",
    "count_tokens",
    "image_label",
    "image_vector",
    "multimodal_vector",
    "serve",
    "sparse_vector",
    "text_vector",
]
