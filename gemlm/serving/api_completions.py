"""``POST /v1/completions`` and ``POST /v1/chat/completions``, plain or streamed (SSE).

Each choice is one job on the model worker, so embedding batches can run between choices. A
streamed choice pushes its text pieces from the worker thread into an asyncio queue; when the
client disconnects, the stream's cancel event stops the generation at the next token.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from gemlm.generation import Completion, Sampling

from .batcher import Done
from .context import ServingContext, serving
from .errors import APIError, error_body
from .schemas import ChatCompletionRequest, CompletionRequest, parse_body

router = APIRouter()

Prompt = str | list[int]


def _check_common(
    ctx: ServingContext, req: CompletionRequest | ChatCompletionRequest, prompts: int
) -> None:
    ctx.check_model(req.model)
    field = req.unsupported()
    if field:
        raise APIError(400, f"{field} is not supported by this server", param=field)
    lim = ctx.limits
    if req.n > lim.max_n:
        raise APIError(400, f"n={req.n} exceeds the limit {lim.max_n}", param="n")
    if prompts > lim.max_prompts:
        raise APIError(400, f"{prompts} prompts exceed the limit {lim.max_prompts}", param="prompt")
    stops = req.stop_list() or []
    if len(stops) > lim.max_stop:
        raise APIError(400, f"at most {lim.max_stop} stop strings", param="stop")
    if req.max_tokens is not None and req.max_tokens > lim.max_output_tokens:
        raise APIError(
            400,
            f"max_tokens={req.max_tokens} exceeds the limit {lim.max_output_tokens}",
            param="max_tokens",
        )


def _resolve_max_tokens(
    ctx: ServingContext, prompt_len: int, requested: int | None, what: str
) -> int:
    """Requested output length checked against the context; a chat default is clipped to fit."""
    room = ctx.context_length - prompt_len
    if room < 1:
        raise APIError(
            400,
            f"the prompt has {prompt_len} tokens; the model's context is {ctx.context_length}",
            param=what,
            code="context_length_exceeded",
        )
    if requested is None:
        return min(ctx.limits.default_chat_max_tokens, room)
    if requested > room:
        raise APIError(
            400,
            f"prompt ({prompt_len} tokens) + max_tokens ({requested}) exceed the model's "
            f"context of {ctx.context_length} tokens",
            param="max_tokens",
            code="context_length_exceeded",
        )
    return requested


def _prepare(ctx: ServingContext, prompts: list[Prompt] | list[dict[str, str]], chat: bool):
    """Worker job: token ids of each prompt (chat: of the one conversation)."""
    if chat:
        try:
            return [ctx.gem.prompt_ids(prompts, chat=True)]  # type: ignore[arg-type]
        except Exception as exc:  # jinja raises its own errors for e.g. non-alternating roles
            raise APIError(
                400,
                f"cannot apply the chat template: {exc}",
                param="messages",
                code="invalid_value",
            ) from exc
    out = []
    for i, p in enumerate(prompts):
        ids = ctx.gem.prompt_ids(p) if isinstance(p, str) and p else list(p)  # "": 400 below
        ctx.check_ids(ids, f"prompt[{i}]" if len(prompts) > 1 else "prompt")
        out.append(ids)
    return out


def _prompts(raw: object) -> list[Prompt]:
    if isinstance(raw, str):
        return [raw]
    if raw and all(isinstance(t, int) for t in raw):  # type: ignore[union-attr]
        return [list(raw)]  # type: ignore[arg-type]
    if not raw:
        raise APIError(400, "prompt is empty", param="prompt", code="invalid_value")
    return list(raw)  # type: ignore[arg-type]


def _messages(req: ChatCompletionRequest) -> list[dict[str, str]]:
    roles = {"developer": "system"}  # the newer OpenAI name of the system role
    return [{"role": roles.get(m.role, m.role), "content": m.text()} for m in req.messages]


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


async def _run(
    request: Request, req: CompletionRequest | ChatCompletionRequest, chat: bool
) -> JSONResponse | StreamingResponse:
    ctx = serving(request)
    prompts: Any = _messages(req) if chat else _prompts(req.prompt)  # type: ignore[union-attr]
    _check_common(ctx, req, 1 if chat else len(prompts))
    requested = req.max_tokens
    if chat and req.max_completion_tokens is not None:  # type: ignore[union-attr]
        requested = req.max_completion_tokens  # type: ignore[union-attr]
        if requested > ctx.limits.max_output_tokens:
            raise APIError(
                400,
                f"max_completion_tokens={requested} exceeds the limit "
                f"{ctx.limits.max_output_tokens}",
                param="max_completion_tokens",
            )
    async with ctx.admit():
        ids_list = await ctx.worker.run(_prepare, ctx, prompts, chat)
    jobs = []
    for ids in ids_list:
        s = Sampling(
            max_new_tokens=_resolve_max_tokens(
                ctx, len(ids), requested, "messages" if chat else "prompt"
            ),
            temperature=req.temperature,
            top_p=req.top_p,
            stop=tuple(req.stop_list() or ()),
            seed=req.seed,
        )
        jobs.append((ids, s))
    rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    head = {"id": rid, "created": int(time.time()), "model": ctx.model_name}
    if req.stream:
        usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(
            _events(ctx, jobs, req.n, chat, head, usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    choices, prompt_tokens, completion_tokens = [], 0, 0
    async with ctx.admit():
        for p, (ids, s) in enumerate(jobs):
            prompt_tokens += len(ids)
            for j in range(req.n):
                c = await ctx.worker.run(ctx.gem.complete, ids, s.for_choice(j))
                completion_tokens += c.completion_tokens
                choice: dict[str, Any] = {"index": p * req.n + j}
                if chat:
                    choice["message"] = {"role": "assistant", "content": c.text}
                else:
                    choice["text"] = c.text
                choice.update(logprobs=None, finish_reason=c.finish_reason)
                choices.append(choice)
    obj = "chat.completion" if chat else "text_completion"
    return JSONResponse(
        {
            **head,
            "object": obj,
            "choices": choices,
            "usage": _usage(prompt_tokens, completion_tokens),
            "system_fingerprint": None,
        }
    )


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _events(
    ctx: ServingContext,
    jobs: list[tuple[list[int], Sampling]],
    n: int,
    chat: bool,
    head: dict[str, Any],
    include_usage: bool,
) -> AsyncIterator[str]:
    """Server-sent events: chunks per choice, then optional usage, then ``data: [DONE]``."""
    obj = "chat.completion.chunk" if chat else "text_completion"
    extra = {"usage": None} if include_usage else {}

    def chunk(index: int, content: str | None, finish: str | None, role: bool = False) -> str:
        if chat:
            delta: dict[str, str] = {"role": "assistant", "content": ""} if role else {}
            if content is not None:
                delta["content"] = content
            c: dict[str, Any] = {"index": index, "delta": delta}
        else:
            c = {"index": index, "text": content or ""}
        c.update(logprobs=None, finish_reason=finish)
        return _sse({**head, "object": obj, "choices": [c], **extra})

    prompt_tokens = completion_tokens = 0
    cancel = threading.Event()
    ctx.cancels.add(cancel)
    try:
        async with ctx.admit():
            for p, (ids, s) in enumerate(jobs):
                prompt_tokens += len(ids)
                for j in range(n):
                    index = p * n + j
                    if chat:
                        yield chunk(index, None, None, role=True)
                    sampling = s.for_choice(j)
                    async for item in ctx.worker.relay(
                        lambda emit, ids=ids, sampling=sampling: ctx.gem.complete(
                            ids, sampling, on_text=emit, cancel=cancel
                        )
                    ):
                        if isinstance(item, Done):
                            done: Completion = item.result
                        else:
                            yield chunk(index, item, None)
                    completion_tokens += done.completion_tokens
                    yield chunk(index, None, done.finish_reason)
        if include_usage:
            usage = _usage(prompt_tokens, completion_tokens)
            yield _sse({**head, "object": obj, "choices": [], "usage": usage})
    except APIError as exc:
        yield _sse(error_body(exc.message, exc.type, exc.code, exc.param))
    except Exception as exc:  # headers are sent: report in-band, as OpenAI-compatible servers do
        yield _sse(error_body(f"generation failed: {type(exc).__name__}: {exc}", "server_error"))
    finally:
        cancel.set()  # a client that left stops the generation at its next token
        ctx.cancels.discard(cancel)
    yield "data: [DONE]\n\n"


@router.post("/v1/completions", response_model=None)
async def completions(request: Request) -> JSONResponse | StreamingResponse:
    return await _run(request, await parse_body(request, CompletionRequest), chat=False)


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
    return await _run(request, await parse_body(request, ChatCompletionRequest), chat=True)
