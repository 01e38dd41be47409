"""Request bodies: ``EmbeddingRequest``, ``CompletionRequest``, ``ChatCompletionRequest``,
``RagRequest`` and the parts they hold (see ``protocol/__init__.py``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..validation import check_inputs, check_stop, invalid, kind

TokenIds = list[Annotated[int, Field(ge=0)]]
Seed = Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]  # the range torch.manual_seed takes
Penalty = Annotated[float, Field(ge=-2, le=2)]
CHAT_ROLES = ("system", "developer", "user", "assistant")


def _as_list(raw: str | list[str] | list[int] | list[list[int]]) -> list[str | list[int]]:
    """The four OpenAI input forms (a string, strings, token ids, token-id lists) as one list
    of texts / token-id lists."""
    if isinstance(raw, str):
        return [raw]
    if all(isinstance(t, int) for t in raw):
        return [list(raw)]  # type: ignore[arg-type]
    return list(raw)  # type: ignore[arg-type]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class EmbeddingRequest(_Strict):
    """``POST /v1/embeddings``: text(s) or token-id list(s).

    ``truncate`` (as in Hugging Face TEI): embed the start of an input longer than the model's
    embedding window instead of refusing it; unset, the server's ``--truncate`` decides.
    """

    input: str | list[str] | TokenIds | list[TokenIds]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    truncate: bool | None = None
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> Any:
        return check_inputs(value, "input")

    def inputs(self) -> list[str | list[int]]:
        """The input as one list of texts / token-id lists."""
        return _as_list(self.input)


class StreamOptions(_Strict):
    include_usage: bool = False


class _GenerationRequest(_Strict):
    """Sampling fields shared by completions and chat. Unset ones take the model's defaults;
    ``top_k`` and ``repetition_penalty`` are vLLM's extensions (``top_k`` -1 or 0: off)."""

    model: str | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=-1)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0)] | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    n: Annotated[int, Field(ge=1)] = 1
    stop: str | list[str] | None = None
    seed: Seed | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _stop(cls, value: Any) -> Any:
        return check_stop(value)

    def stop_list(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return [s for s in stops if s]

    def sampling_fields(self) -> dict[str, Any]:
        """The sampling settings for ``gemlm.generation.Sampling`` (``None``: the model's)."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": None if self.top_k is None else max(self.top_k, 0),
            "repetition_penalty": self.repetition_penalty,
            "frequency_penalty": self.frequency_penalty or 0.0,
            "presence_penalty": self.presence_penalty or 0.0,
            "seed": self.seed,
        }

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_GenerationRequest):
    """``POST /v1/completions``: a prompt (text, token ids, or a list of either)."""

    prompt: str | list[str] | TokenIds | list[TokenIds]
    max_tokens: Annotated[int, Field(ge=1)] | None = 16  # the legacy API's default
    logprobs: int | None = None
    echo: bool = False
    suffix: str | None = None
    best_of: Annotated[int, Field(ge=1)] | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> Any:
        if value == "":
            return value  # refused with the prompts' token checks, as "prompt is empty"
        return check_inputs(value, "prompt")

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

    def prompts(self) -> list[str | list[int]]:
        """The prompt as one list of texts / token-id lists."""
        return _as_list(self.prompt)


class ContentPart(_Strict):
    type: str
    text: str | None = None


class ChatMessage(_Strict):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @field_validator("role")
    @classmethod
    def _role(cls, role: str) -> str:
        if role in ("tool", "function"):
            raise invalid(
                None, f"{role!r} messages answer tool calls, which this server never makes"
            )
        if role not in CHAT_ROLES:
            raise invalid(
                None, f"{role!r} is not a chat role; use system, developer, user or assistant"
            )
        return role

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, value: Any) -> Any:
        if value is None or isinstance(value, str | list):
            return value
        raise invalid(None, f"must be a string or a list of content parts; got {kind(value)}")

    def text(self) -> str:
        """The message as plain text (its parts are text: the request checked them)."""
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content)
        return self.content or ""


class ResponseFormat(_Strict):
    """Only ``{"type": "text"}`` (plain text, what the server makes anyway) is honoured."""

    model_config = ConfigDict(strict=True, extra="allow")
    type: str

    @field_validator("type")
    @classmethod
    def _text_only(cls, value: str) -> str:
        if value != "text":
            raise invalid(
                None,
                f"{value!r} is not supported: this server generates plain text; send "
                '{"type": "text"} or leave response_format out',
            )
        return value


class ChatCompletionRequest(_GenerationRequest):
    """``POST /v1/chat/completions``: text content only (a non-text part is refused by name)."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    tools: list[Any] | None = None

    @model_validator(mode="after")
    def _text_only(self) -> ChatCompletionRequest:
        for i, message in enumerate(self.messages):
            parts = message.content if isinstance(message.content, list) else []
            for j, part in enumerate(parts):
                if part.type != "text" or part.text is None:
                    raise invalid(
                        f"messages[{i}].content[{j}]",
                        f"content part type {part.type!r} is not supported (text only)",
                        code="unsupported_content",
                    )
        return self

    def unsupported(self) -> str | None:
        if self.logprobs:
            return "logprobs"
        if self.tools:
            return "tools"
        return None

    def conversation(self) -> list[dict[str, str]]:
        """The messages as the chat template takes them (``developer``: the newer OpenAI name
        of the system role)."""
        roles = {"developer": "system"}
        return [{"role": roles.get(m.role, m.role), "content": m.text()} for m in self.messages]


class RagRequest(_Strict):
    """``POST /v1/rag``. Unset: ``top_k`` the engine's, ``max_tokens`` the engine's short
    answer budget, ``temperature`` / ``top_p`` the model's generation defaults."""

    question: Annotated[str, Field(min_length=1)]
    model: str | None = None
    top_k: Annotated[int, Field(ge=1, le=50)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    seed: Seed | None = None
    stream: bool = False
