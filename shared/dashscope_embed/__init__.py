"""dashscope-embed: Alibaba Cloud Model Studio (DashScope) embeddings over a typed httpx core.

Quick start::

    from dashscope_embed import DashScopeClient

    with DashScopeClient() as client:          # key from DASHSCOPE_API_KEY
        result = client.embed_texts(["hello", "world"], dimension=512)
    result.embeddings.shape                     # (2, 512), float32, input order

``import dashscope_embed`` never imports LangChain or LlamaIndex. The local emulator lives in
:mod:`dashscope_embed.emulator`.
"""

from __future__ import annotations

from ._client import AsyncDashScopeClient, DashScopeClient
from ._config import REGIONS, ClientConfig
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BatchSizeError,
    ConfigurationError,
    ContentModerationError,
    DashScopeError,
    InputTooLongError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from ._models import DEFAULT_TEXT_MODEL, MODELS, ModelSpec, get_model
from ._stats import ClientStats
from ._throttle import Throttle
from ._types import EmbeddingResult, OutputType, SparseVector, TextType, Usage

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "MODELS",
    "REGIONS",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncDashScopeClient",
    "AuthenticationError",
    "BadRequestError",
    "BatchSizeError",
    "ClientConfig",
    "ClientStats",
    "ConfigurationError",
    "ContentModerationError",
    "DashScopeClient",
    "DashScopeError",
    "EmbeddingResult",
    "InputTooLongError",
    "InvalidInputError",
    "ModelSpec",
    "NotFoundError",
    "OutputType",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "SparseVector",
    "TextType",
    "Throttle",
    "Usage",
    "__version__",
    "get_model",
]
