"""Response bodies and stream events, in the wire's field order (see ``protocol/__init__.py``)."""

from __future__ import annotations

import base64
from typing import Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_serializer

FinishReason = Literal["stop", "length"]  # "stop": eos, a stop string or a cancel


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorInfo(_Response):
    message: str
    type: str  # "invalid_request_error" (4xx) or "server_error" (5xx)
    param: str | None = None
    code: str | None = None


class ErrorResponse(_Response):
    """Every failure, in OpenAI's shape (the ``openai`` SDK maps the status to its exception
    classes); also sent in-band as an event when a stream fails after its headers."""

    error: ErrorInfo


class Embedding(_Response):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # "base64": little-endian float32 bytes, as the SDK decodes

    @classmethod
    def encode(
        cls, index: int, vector: np.ndarray, dimensions: int | None, encoding_format: str
    ) -> Embedding:
        """Cut to ``dimensions`` and re-normalise (OpenAI semantics), then a float list or
        base64 of little-endian float32."""
        if dimensions is not None and dimensions < vector.shape[0]:
            vector = vector[:dimensions]
            vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        vector = np.ascontiguousarray(vector, dtype="<f4")
        if encoding_format == "base64":
            return cls(index=index, embedding=base64.b64encode(vector.tobytes()).decode("ascii"))
        return cls(index=index, embedding=vector.tolist())


class EmbeddingUsage(_Response):
    prompt_tokens: int  # model input tokens: with the prompt and the GEM readout tokens
    total_tokens: int


class EmbeddingResponse(_Response):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class UsageInfo(_Response):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def count(cls, prompt_tokens: int, completion_tokens: int, **more: int) -> Self:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            **more,
        )


class _Stamped(_Response):
    """The head of every generation response and stream event."""

    id: str
    created: int
    model: str


class CompletionChoice(_Response):
    index: int
    text: str
    logprobs: None = None
    finish_reason: FinishReason


class CompletionResponse(_Stamped):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]
    usage: UsageInfo
    system_fingerprint: None = None


class AssistantMessage(_Response):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(_Response):
    index: int
    message: AssistantMessage
    logprobs: None = None
    finish_reason: FinishReason


class ChatCompletionResponse(_Stamped):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatCompletionChoice]
    usage: UsageInfo
    system_fingerprint: None = None


class CompletionStreamChoice(_Response):
    index: int
    text: str
    logprobs: None = None
    finish_reason: FinishReason | None = None


class CompletionStreamResponse(_Stamped):
    """A streamed ``text_completion`` chunk. ``usage`` is on the wire only when the request
    asks (``stream_options.include_usage``): null on each chunk, then a last chunk with no
    choices carries it."""

    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionStreamChoice]
    usage: UsageInfo | None = None


class DeltaMessage(_Response):
    """What a chat chunk adds: a choice's first chunk the role (with content ""), then text,
    its last nothing. Unset fields are left off the wire."""

    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _set_only(self, dump: Any):  # unannotated: the schema stays the fields'
        return {k: v for k, v in dump(self).items() if v is not None}


class ChatCompletionStreamChoice(_Response):
    index: int
    delta: DeltaMessage
    logprobs: None = None
    finish_reason: FinishReason | None = None


class ChatCompletionStreamResponse(_Stamped):
    """A streamed ``chat.completion.chunk``; ``usage`` as in ``CompletionStreamResponse``."""

    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatCompletionStreamChoice]
    usage: UsageInfo | None = None


class RagSource(_Response):
    """A retrieved passage, cited in the answer as ``[rank]`` (``gemlm.rag.ask.Source``)."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)
    rank: int
    score: float
    text: str
    source: str
    title: str = ""
    doc_id: str = ""
    chunk: int = 0
    id: str = ""


class RagUsage(UsageInfo):
    reused_prompt_tokens: int  # prompt tokens whose KV came from the embedding forward


class RagAnswerResponse(_Stamped):
    """``POST /v1/rag``'s answer; streamed, the last event before ``[DONE]``."""

    object: Literal["rag.answer"] = "rag.answer"
    answer: str
    cited: list[int]  # the source ranks the answer cites as [n]
    finish_reason: FinishReason
    sources: list[RagSource]
    usage: RagUsage
    timings: dict[str, float]  # seconds, to 0.1 ms

    @field_validator("timings")
    @classmethod
    def _rounded(cls, timings: dict[str, float]) -> dict[str, float]:
        return {k: round(v, 4) for k, v in timings.items()}


class RagSourcesEvent(_Stamped):
    """A RAG stream's first event: the sources, known before generation starts."""

    object: Literal["rag.sources"] = "rag.sources"
    sources: list[RagSource]


class RagDeltaEvent(_Stamped):
    object: Literal["rag.delta"] = "rag.delta"
    delta: str


class GenerationDefaultsCard(_Response):
    """What a request that leaves sampling unset gets (``GEMModel.generation_defaults``)."""

    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    source: str


class ModelCard(_Response):
    """One entry of ``GET /v1/models`` (OpenAI's fields, vLLM's ``max_model_len``, and ours)."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "gemlm"
    max_model_len: int
    embedding_dimension: int
    embedding_max_tokens: int
    generation_defaults: GenerationDefaultsCard


class ModelList(_Response):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class HealthResponse(_Response):
    status: Literal["ok"] = "ok"
    model: str
    pending: int  # requests in flight
    embedding_batches: int  # micro-batches run so far
