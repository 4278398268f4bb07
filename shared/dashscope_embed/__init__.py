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

from dashscope_embed.multimodal._inputs import Fused, Image, MultiImages, MultimodalInput, Video
from dashscope_embed.multimodal._options import DEFAULT_MULTIMODAL_MODEL

from ._async_client import AsyncDashScopeClient
from ._client import DashScopeClient
from ._config import REGIONS, ClientConfig
from ._engine._stats import ClientStats
from ._engine._throttle import Throttle
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
from ._types import EmbeddingResult, OutputType, PartialResult, SparseVector, TextType, Usage
from .batch._api import BatchInfo, list_batches
from .batch._files import BatchFailure
from .batch._job import BatchJob, BatchPartStatus, BatchReport, BatchStatus, embed_batch
from .io._stream import (
    StreamSummary,
    aiter_embeddings,
    embed_to_file,
    embed_to_npy,
    iter_embeddings,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MULTIMODAL_MODEL",
    "DEFAULT_TEXT_MODEL",
    "MODELS",
    "REGIONS",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncDashScopeClient",
    "AuthenticationError",
    "BadRequestError",
    "BatchFailure",
    "BatchInfo",
    "BatchJob",
    "BatchPartStatus",
    "BatchReport",
    "BatchSizeError",
    "BatchStatus",
    "ClientConfig",
    "ClientStats",
    "ConfigurationError",
    "ContentModerationError",
    "DashScopeClient",
    "DashScopeError",
    "EmbeddingResult",
    "Fused",
    "Image",
    "InputTooLongError",
    "InvalidInputError",
    "ModelSpec",
    "MultiImages",
    "MultimodalInput",
    "NotFoundError",
    "OutputType",
    "PartialResult",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "SparseVector",
    "StreamSummary",
    "TextType",
    "Throttle",
    "Usage",
    "Video",
    "__version__",
    "aiter_embeddings",
    "embed_batch",
    "embed_to_file",
    "embed_to_npy",
    "get_model",
    "iter_embeddings",
    "list_batches",
]
