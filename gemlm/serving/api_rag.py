"""``POST /v1/rag``: question in, answer + cited sources out, from the model the server holds.

Active when the server was started with a collection (``gemlm serve --rag-collection NAME``):
``app.state.rag`` is then a ``gemlm.rag.RagEngine``. Retrieval and generation are jobs on the
same model worker as embeddings and chat. Streaming sends server-sent events: one
``rag.sources`` event (known before generation starts), ``rag.delta`` text pieces, one final
``rag.answer`` with usage, then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .batcher import Done
from .context import ServingContext, serving
from .errors import APIError, error_body
from .schemas import parse_body

router = APIRouter()


class RagRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    question: str = Field(min_length=1)
    model: str | None = None
    top_k: int | None = Field(default=None, ge=1, le=50)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stream: bool = False


def _engine(request: Request) -> Any:
    engine = getattr(request.app.state, "rag", None)
    if engine is None:
        raise APIError(
            404,
            "no RAG collection is configured: start the server with --rag-collection NAME",
            code="rag_not_configured",
            type="invalid_request_error",
        )
    return engine


def _rag_error(exc: Exception) -> APIError:
    return APIError(400, str(exc), code=type(exc).__name__, param="question")


def _answer_body(head: dict[str, Any], answer: Any) -> dict[str, Any]:
    return {
        **head,
        "object": "rag.answer",
        "answer": answer.answer,
        "sources": [asdict(s) for s in answer.sources],
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
            "reused_prompt_tokens": answer.reused_tokens,
        },
        "timings": {k: round(v, 4) for k, v in answer.timings.items()},
    }


@router.post("/v1/rag", response_model=None)
async def rag(request: Request) -> JSONResponse | StreamingResponse:
    from gemlm.rag.store import RagError

    engine = _engine(request)
    ctx = serving(request)
    req = await parse_body(request, RagRequest)
    if req.model is not None:
        ctx.check_model(req.model)
    if req.max_tokens > ctx.limits.max_output_tokens:
        raise APIError(
            400,
            f"max_tokens={req.max_tokens} exceeds the limit {ctx.limits.max_output_tokens}",
            param="max_tokens",
        )
    kwargs = dict(top_k=req.top_k, max_new_tokens=req.max_tokens, temperature=req.temperature)
    head = {"id": f"rag-{uuid.uuid4().hex}", "created": int(time.time()), "model": ctx.model_name}
    async with ctx.admit():
        try:
            if not req.stream:
                answer = await ctx.worker.run(engine.ask, req.question, **kwargs)
                return JSONResponse(_answer_body(head, answer))
            stream = await ctx.worker.run(engine.ask_stream, req.question, **kwargs)
        except RagError as exc:
            raise _rag_error(exc) from exc
    return StreamingResponse(
        _events(ctx, stream, head),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _events(ctx: ServingContext, stream: Any, head: dict[str, Any]) -> AsyncIterator[str]:
    def generate(emit: Any) -> Any:  # worker thread: pieces go to the event loop as they come
        for piece in stream:
            emit(piece)
        return stream.result()

    yield _sse({**head, "object": "rag.sources", "sources": [asdict(s) for s in stream.sources]})
    try:
        async with ctx.admit():
            async for item in ctx.worker.relay(generate):
                if isinstance(item, Done):
                    yield _sse(_answer_body(head, item.result))
                else:
                    yield _sse({**head, "object": "rag.delta", "delta": item})
    except APIError as exc:
        yield _sse(error_body(exc.message, exc.type, exc.code, exc.param))
    except Exception as exc:  # headers are sent: report in-band
        yield _sse(error_body(f"generation failed: {type(exc).__name__}: {exc}", "server_error"))
    yield "data: [DONE]\n\n"
