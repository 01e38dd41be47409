"""Pydantic models of the OpenAI request bodies the server accepts, and the body parser.

Validation is strict (``"5"`` is not an int, ``true`` is not a token id, NaN is not a float) so a
wrong type is a 400 naming the field, never a 500 later. Unknown fields are ignored, as OpenAI
clients send many optional ones (``user``, penalties, ...); fields whose meaning the server cannot
honour (``logprobs``, ``echo``, ``suffix``, ``tools``) are accepted only when unset.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import APIError

TokenIds = list[Annotated[int, Field(ge=0)]]
Seed = Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]  # the range torch.manual_seed takes


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class EmbeddingRequest(_Strict):
    """``POST /v1/embeddings``: text(s) or token-id list(s)."""

    input: str | list[str] | TokenIds | list[TokenIds]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class _GenerationRequest(_Strict):
    """Sampling fields shared by completions and chat. Defaults are the OpenAI API's."""

    model: str | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    n: Annotated[int, Field(ge=1)] = 1
    stop: str | list[str] | None = None
    seed: Seed | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    def stop_list(self) -> list[str] | None:
        if self.stop is None:
            return None
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return [s for s in stops if s] or None


class CompletionRequest(_GenerationRequest):
    """``POST /v1/completions``: a prompt (text, token ids, or a list of either)."""

    prompt: str | list[str] | TokenIds | list[TokenIds]
    max_tokens: Annotated[int, Field(ge=1)] | None = 16  # the legacy API's default
    logprobs: int | None = None
    echo: bool = False
    suffix: str | None = None
    best_of: Annotated[int, Field(ge=1)] | None = None

    def unsupported(self) -> str | None:
        if self.logprobs:
            return "logprobs"
        if self.echo:
            return "echo"
        if self.suffix:
            return "suffix"
        if self.best_of not in (None, 1, self.n):
            return "best_of"
        return None


class ContentPart(_Strict):
    type: str
    text: str | None = None


class ChatMessage(_Strict):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        """The message as plain text; non-text content parts are refused."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise APIError(
                    400,
                    f"content part type {part.type!r} is not supported (text only)",
                    param="messages",
                    code="unsupported_content",
                )
            parts.append(part.text)
        return "".join(parts)


class ChatCompletionRequest(_GenerationRequest):
    """``POST /v1/chat/completions``."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool | None = None
    tools: list[Any] | None = None

    def unsupported(self) -> str | None:
        if self.logprobs:
            return "logprobs"
        if self.tools:
            return "tools"
        return None


M = TypeVar("M", bound=BaseModel)


async def parse_body(request: Request, model: type[M]) -> M:
    """Read, decode (strict UTF-8), parse and validate a JSON body; any failure is a 400."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, f"request body is not valid UTF-8: {exc}", code="invalid_body") from exc
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    if "\\u" in text or "\\U" in text:  # escapes may smuggle lone surrogates the tokenizer rejects
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise APIError(
                400,
                "request body holds an invalid unicode escape (lone surrogate)",
                code="invalid_body",
            ) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or None
        raise APIError(
            400,
            f"{where}: {err['msg']}" if where else err["msg"],
            param=where,
            code="invalid_value",
        ) from exc
