"""The protocol: every request and response body of the server, as Pydantic models.

Import them from here (``from gemlm.serving.protocol import ChatCompletionRequest``); they are
written in two files, ``requests.py`` and ``responses.py``, to keep each readable.

Requests are validated strictly (``"5"`` is not an int, ``true`` is not a token id, NaN is not a
float), so a wrong type is a 400 naming the field in plain words (``serving/validation.py``),
never a 500 later. Unknown fields are ignored, as OpenAI clients send many optional ones
(``user``, ``logit_bias`` ...); fields whose meaning the server cannot honour (``logprobs``,
``echo``, ``suffix``, ``tools``) are accepted only when unset. Sampling fields a request leaves
out (``temperature``, ``top_p``, ``top_k``, ``repetition_penalty``) take the model's generation
defaults, as vLLM does, not the OpenAI API's temperature 1.

Responses are built from these models only, and their field order is the wire's (the
``openai`` SDK, LangChain and LlamaIndex read them): every error (``ErrorResponse``, also sent
in-band when a stream fails), embeddings (float lists, or base64 of little-endian float32),
completions and chat with their stream chunks, the RAG answer with its stream events, the model
cards and ``/health``. ``REQUESTS`` and ``RESPONSES`` list the top-level bodies (``app.py``
publishes them in the OpenAPI schema).
"""

from __future__ import annotations

from .requests import (
    CHAT_ROLES,
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    ContentPart,
    EmbeddingRequest,
    RagRequest,
    ResponseFormat,
    StreamOptions,
)
from .responses import (
    AssistantMessage,
    ChatCompletionChoice,
    ChatCompletionResponse,
    ChatCompletionStreamChoice,
    ChatCompletionStreamResponse,
    CompletionChoice,
    CompletionResponse,
    CompletionStreamChoice,
    CompletionStreamResponse,
    DeltaMessage,
    Embedding,
    EmbeddingResponse,
    EmbeddingUsage,
    ErrorInfo,
    ErrorResponse,
    FinishReason,
    GenerationDefaultsCard,
    HealthResponse,
    ModelCard,
    ModelList,
    RagAnswerResponse,
    RagDeltaEvent,
    RagSource,
    RagSourcesEvent,
    RagUsage,
    UsageInfo,
)

REQUESTS = (EmbeddingRequest, CompletionRequest, ChatCompletionRequest, RagRequest)
RESPONSES = (
    ErrorResponse,
    EmbeddingResponse,
    CompletionResponse,
    CompletionStreamResponse,
    ChatCompletionResponse,
    ChatCompletionStreamResponse,
    RagAnswerResponse,
    RagSourcesEvent,
    RagDeltaEvent,
    ModelList,
    ModelCard,
    HealthResponse,
)

__all__ = [
    "CHAT_ROLES",
    "REQUESTS",
    "RESPONSES",
    "AssistantMessage",
    "ChatCompletionChoice",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatCompletionStreamChoice",
    "ChatCompletionStreamResponse",
    "ChatMessage",
    "CompletionChoice",
    "CompletionRequest",
    "CompletionResponse",
    "CompletionStreamChoice",
    "CompletionStreamResponse",
    "ContentPart",
    "DeltaMessage",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "ErrorInfo",
    "ErrorResponse",
    "FinishReason",
    "GenerationDefaultsCard",
    "HealthResponse",
    "ModelCard",
    "ModelList",
    "RagAnswerResponse",
    "RagDeltaEvent",
    "RagRequest",
    "RagSource",
    "RagSourcesEvent",
    "RagUsage",
    "ResponseFormat",
    "StreamOptions",
    "UsageInfo",
]
