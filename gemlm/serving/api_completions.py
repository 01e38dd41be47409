"""``POST /v1/completions`` and ``POST /v1/chat/completions``, plain or streamed (SSE).

Sampling a request leaves unset takes the model's generation defaults (``/v1/models`` shows
them); ``frequency_penalty`` / ``presence_penalty`` (OpenAI) and ``repetition_penalty`` /
``top_k`` (vLLM) are applied by the one generation engine.

Each choice is one job on the model worker, so embedding batches can run between choices. A
streamed choice pushes its text pieces from the worker thread into an asyncio queue; when the
client disconnects, the stream's cancel event stops the generation at the next token.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Generic, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gemlm.generation import Completion, Sampling

from .batcher import Done
from .errors import APIError
from .handler import DONE, Handler, documented, sse
from .protocol import (
    AssistantMessage,
    ChatCompletionChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionStreamChoice,
    ChatCompletionStreamResponse,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    CompletionStreamChoice,
    CompletionStreamResponse,
    DeltaMessage,
    UsageInfo,
)

router = APIRouter()

Req = TypeVar("Req", CompletionRequest, ChatCompletionRequest)
Job = tuple[list[int], Sampling]  # a prompt's token ids and its sampling


class _ServingGeneration(Handler, Generic[Req]):
    """What completions and chat share: the checks, one job per choice, the stream. A
    subclass says what its prompts are, how they become token ids, and what a choice, a
    response and a stream chunk are."""

    request_model: ClassVar[type[Any]]
    chunk_model: ClassVar[type[Any]]  # of a stream
    prefix: ClassVar[str]  # of the response id
    prompt_param: ClassVar[str]  # where a prompt over the context is reported
    head: dict[str, Any]  # id, created, model: the same on the response and every chunk

    def prompts(self, req: Req) -> list[Any]:
        raise NotImplementedError

    def requested_tokens(self, req: Req) -> int | None:
        return req.max_tokens

    def prepare(self, prompts: list[Any]) -> list[list[int]]:
        """Worker job: the token ids of each prompt."""
        raise NotImplementedError

    def choice(self, index: int, done: Completion) -> Any:
        raise NotImplementedError

    def response(self, choices: list[Any], usage: UsageInfo) -> Any:
        raise NotImplementedError

    def chunk(self, index: int, text: str | None, finish: str | None = None) -> Any:
        """A stream chunk of one choice: a text piece, or (``finish``) its end."""
        raise NotImplementedError

    def opening(self, index: int) -> Any:
        """The chunk that opens a choice's stream, if any."""
        return None

    async def validate(self) -> tuple[Req, list[Any], int | None]:
        """The request, its prompts and the output length asked for, or the 4xx."""
        req: Req = await self.parse(self.request_model)
        prompts = self.prompts(req)
        self.check_model(req.model)
        field = req.unsupported()
        if field:
            raise APIError(400, f"{field} is not supported by this server", param=field)
        lim = self.ctx.limits
        if req.n > lim.max_n:
            raise APIError(400, f"n={req.n} exceeds the limit {lim.max_n}", param="n")
        if len(prompts) > lim.max_prompts:
            raise APIError(
                400, f"{len(prompts)} prompts exceed the limit {lim.max_prompts}", param="prompt"
            )
        if len(req.stop_list()) > lim.max_stop:
            raise APIError(400, f"at most {lim.max_stop} stop strings", param="stop")
        self.check_output_tokens(req.max_tokens, "max_tokens")
        return req, prompts, self.requested_tokens(req)

    def max_new_tokens(self, prompt_len: int, requested: int | None) -> int:
        """Requested output length checked against the context; a default is clipped to fit."""
        context = self.ctx.context_length
        room = context - prompt_len
        if room < 1:
            raise APIError(
                400,
                f"the prompt has {prompt_len} tokens; the model's context is {context}",
                param=self.prompt_param,
                code="context_length_exceeded",
            )
        if requested is None:
            return min(self.ctx.limits.default_chat_max_tokens, room)
        if requested > room:
            raise APIError(
                400,
                f"prompt ({prompt_len} tokens) + max_tokens ({requested}) exceed the model's "
                f"context of {context} tokens",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return requested

    async def create(self) -> Response:
        req, prompts, requested = await self.validate()
        async with self.ctx.admit():
            ids_list = await self.ctx.worker.run(self.prepare, prompts)
        stop, sampling = tuple(req.stop_list()), req.sampling_fields()  # unset: the model's
        jobs: list[Job] = []
        for ids in ids_list:
            budget = self.max_new_tokens(len(ids), requested)
            jobs.append((ids, Sampling(max_new_tokens=budget, stop=stop, **sampling)))
        self.head = self.stamp(self.prefix)
        if req.stream:
            return self.stream(self.events(jobs, req.n, req.include_usage()))
        choices, prompt_tokens, completion_tokens = [], 0, 0
        async with self.ctx.admit():
            for p, (ids, s) in enumerate(jobs):
                prompt_tokens += len(ids)
                for j in range(req.n):
                    done = await self.ctx.worker.run(self.ctx.gem.complete, ids, s.for_choice(j))
                    completion_tokens += done.completion_tokens
                    choices.append(self.choice(p * req.n + j, done))
        usage = UsageInfo.count(prompt_tokens, completion_tokens)
        return self.respond(self.response(choices, usage))

    async def events(self, jobs: list[Job], n: int, include_usage: bool) -> AsyncIterator[str]:
        """Server-sent events: chunks per choice, then optional usage, then ``data: [DONE]``.
        Each chunk carries ``"usage": null`` only when the request asked for usage."""
        dump: dict[str, Any] = {} if include_usage else {"exclude": {"usage"}}
        prompt_tokens = completion_tokens = 0
        cancel = threading.Event()
        self.ctx.cancels.add(cancel)
        try:
            async with self.ctx.admit():
                for p, (ids, s) in enumerate(jobs):
                    prompt_tokens += len(ids)
                    for j in range(n):
                        index = p * n + j
                        if (first := self.opening(index)) is not None:
                            yield sse(first, **dump)
                        sampling = s.for_choice(j)
                        async for item in self.ctx.worker.relay(
                            lambda emit, ids=ids, sampling=sampling: self.ctx.gem.complete(
                                ids, sampling, on_text=emit, cancel=cancel
                            )
                        ):
                            if isinstance(item, Done):
                                done: Completion = item.result
                            else:
                                yield sse(self.chunk(index, item), **dump)
                        completion_tokens += done.completion_tokens
                        yield sse(self.chunk(index, None, done.finish_reason), **dump)
            if include_usage:
                usage = UsageInfo.count(prompt_tokens, completion_tokens)
                yield sse(self.chunk_model(**self.head, choices=[], usage=usage))
        except Exception as exc:  # headers are sent: report in-band
            yield self.failure(exc)
        finally:
            cancel.set()  # a client that left stops the generation at its next token
            self.ctx.cancels.discard(cancel)
        yield DONE


class ServingCompletion(_ServingGeneration[CompletionRequest]):
    """``/v1/completions``: one or more prompts (text or token ids), ``n`` choices each."""

    request_model = CompletionRequest
    chunk_model = CompletionStreamResponse
    prefix = "cmpl"
    prompt_param = "prompt"

    def prompts(self, req: CompletionRequest) -> list[str | list[int]]:
        return req.prompts()

    def prepare(self, prompts: list[str | list[int]]) -> list[list[int]]:
        out = []
        for i, p in enumerate(prompts):
            ids = self.ctx.gem.prompt_ids(p) if isinstance(p, str) and p else list(p)
            self.check_ids(ids, f"prompt[{i}]" if len(prompts) > 1 else "prompt")  # "": empty
            out.append(ids)
        return out

    def choice(self, index: int, done: Completion) -> CompletionChoice:
        return CompletionChoice(index=index, text=done.text, finish_reason=done.finish_reason)

    def response(self, choices: list[Any], usage: UsageInfo) -> CompletionResponse:
        return CompletionResponse(**self.head, choices=choices, usage=usage)

    def chunk(
        self, index: int, text: str | None, finish: str | None = None
    ) -> CompletionStreamResponse:
        choice = CompletionStreamChoice(index=index, text=text or "", finish_reason=finish)
        return CompletionStreamResponse(**self.head, choices=[choice])


class ServingChat(_ServingGeneration[ChatCompletionRequest]):
    """``/v1/chat/completions``: one conversation through the chat template, ``n`` choices."""

    request_model = ChatCompletionRequest
    chunk_model = ChatCompletionStreamResponse
    prefix = "chatcmpl"
    prompt_param = "messages"

    def prompts(self, req: ChatCompletionRequest) -> list[list[dict[str, str]]]:
        return [req.conversation()]

    def requested_tokens(self, req: ChatCompletionRequest) -> int | None:
        if req.max_completion_tokens is None:
            return req.max_tokens
        self.check_output_tokens(req.max_completion_tokens, "max_completion_tokens")
        return req.max_completion_tokens

    def prepare(self, prompts: list[list[dict[str, str]]]) -> list[list[int]]:
        try:
            return [self.ctx.gem.prompt_ids(prompts[0], chat=True)]
        except Exception as exc:  # jinja raises its own errors for e.g. non-alternating roles
            raise APIError(
                400,
                f"cannot apply the chat template: {exc}",
                param="messages",
                code="invalid_value",
            ) from exc

    def choice(self, index: int, done: Completion) -> ChatCompletionChoice:
        message = AssistantMessage(content=done.text)
        return ChatCompletionChoice(index=index, message=message, finish_reason=done.finish_reason)

    def response(self, choices: list[Any], usage: UsageInfo) -> ChatCompletionResponse:
        return ChatCompletionResponse(**self.head, choices=choices, usage=usage)

    def chunk(
        self, index: int, text: str | None, finish: str | None = None
    ) -> ChatCompletionStreamResponse:
        return self._chunk(index, DeltaMessage(content=text), finish)

    def opening(self, index: int) -> ChatCompletionStreamResponse:
        return self._chunk(index, DeltaMessage(role="assistant", content=""))

    def _chunk(
        self, index: int, delta: DeltaMessage, finish: str | None = None
    ) -> ChatCompletionStreamResponse:
        choice = ChatCompletionStreamChoice(index=index, delta=delta, finish_reason=finish)
        return ChatCompletionStreamResponse(**self.head, choices=[choice])


@router.post(
    "/v1/completions",
    **documented(CompletionResponse, request=CompletionRequest, stream=(CompletionStreamResponse,)),
)
async def create_completion(request: Request) -> Response:
    return await ServingCompletion(request).create()


@router.post(
    "/v1/chat/completions",
    **documented(
        ChatCompletionResponse,
        request=ChatCompletionRequest,
        stream=(ChatCompletionStreamResponse,),
    ),
)
async def create_chat_completion(request: Request) -> Response:
    return await ServingChat(request).create()
