"""``POST /v1/rag``: question in, answer + cited sources out, from the model the server holds.

Active when the server was started with a collection (``gemlm serve --rag-collection NAME``):
``app.state.rag`` is then a ``gemlm.rag.RagEngine``. Retrieval and generation are jobs on the
same model worker as embeddings and chat. The answer is brief (it stops at a blank line, within
a short token budget) and cites the sources as ``[n]``: ``sources`` lists them with their
numbers (``rank``) and ``cited`` the numbers the answer uses. Streaming sends server-sent
events: one ``rag.sources`` event (known before generation starts), ``rag.delta`` text pieces,
one final ``rag.answer`` with usage, then ``data: [DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gemlm.rag.types import RagError

from .batcher import Done
from .errors import APIError
from .handler import DONE, Handler, documented, sse
from .protocol import (
    RagAnswerResponse,
    RagDeltaEvent,
    RagRequest,
    RagSource,
    RagSourcesEvent,
    RagUsage,
)

router = APIRouter()


class ServingRag(Handler):
    """One ``/v1/rag`` request against the server's ``RagEngine``."""

    async def validate(self) -> tuple[Any, RagRequest]:
        """The engine and the request, or the 4xx (404 when no collection is configured)."""
        engine = getattr(self.request.app.state, "rag", None)
        if engine is None:
            raise APIError(
                404,
                "no RAG collection is configured: start the server with --rag-collection NAME",
                code="rag_not_configured",
                type="invalid_request_error",
            )
        req = await self.parse(RagRequest)
        self.check_model(req.model)
        self.check_output_tokens(req.max_tokens, "max_tokens")
        return engine, req

    async def create(self) -> Response:
        engine, req = await self.validate()
        settings = dict(  # unset: the engine's brief-answer budget, the model's sampling defaults
            top_k=req.top_k,
            max_new_tokens=req.max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            seed=req.seed,
        )
        self.head = self.stamp("rag")
        async with self.ctx.admit():
            try:
                if not req.stream:
                    answer = await self.ctx.worker.run(engine.ask, req.question, **settings)
                    return self.respond(self.answer(answer))
                stream = await self.ctx.worker.run(engine.ask_stream, req.question, **settings)
            except RagError as exc:
                raise APIError(400, str(exc), code=type(exc).__name__, param="question") from exc
        return self.stream(self.events(stream))

    def answer(self, answer: Any) -> RagAnswerResponse:
        """The response for the engine's ``RagAnswer``."""
        usage = RagUsage.count(
            answer.prompt_tokens,
            answer.completion_tokens,
            reused_prompt_tokens=answer.reused_tokens,
        )
        return RagAnswerResponse(
            **self.head,
            answer=answer.answer,
            cited=answer.cited,
            finish_reason=answer.finish_reason,
            sources=self.sources(answer.sources),
            usage=usage,
            timings=answer.timings,
        )

    @staticmethod
    def sources(sources: list[Any]) -> list[RagSource]:
        return [RagSource.model_validate(s) for s in sources]

    async def events(self, stream: Any) -> AsyncIterator[str]:
        def generate(emit: Any) -> Any:  # worker thread: pieces go to the event loop as they come
            for piece in stream:
                emit(piece)
            return stream.result()

        yield sse(RagSourcesEvent(**self.head, sources=self.sources(stream.sources)))
        try:
            async with self.ctx.admit():
                async for item in self.ctx.worker.relay(generate):
                    if isinstance(item, Done):
                        yield sse(self.answer(item.result))
                    else:
                        yield sse(RagDeltaEvent(**self.head, delta=item))
        except Exception as exc:  # headers are sent: report in-band
            yield self.failure(exc)
        yield DONE


@router.post(
    "/v1/rag",
    **documented(
        RagAnswerResponse,
        request=RagRequest,
        stream=(RagSourcesEvent, RagDeltaEvent, RagAnswerResponse),
    ),
)
async def rag(request: Request) -> Response:
    return await ServingRag(request).create()
