"""``GET /health``, ``GET /v1/models`` and ``GET /v1/models/{id}``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .handler import Handler, documented
from .protocol import GenerationDefaultsCard, HealthResponse, ModelCard, ModelList

router = APIRouter()


class ServingModels(Handler):
    """The served model's card, and the server's health."""

    def health(self) -> HealthResponse:
        ctx = self.ctx
        return HealthResponse(
            model=ctx.model_name, pending=ctx.pending, embedding_batches=ctx.batcher.batches
        )

    def card(self, model_id: str | None = None) -> ModelCard:
        self.check_model(model_id)
        ctx = self.ctx
        return ModelCard(
            id=ctx.model_name,
            created=ctx.created,
            max_model_len=ctx.context_length,
            embedding_dimension=ctx.embedding_dim,
            embedding_max_tokens=ctx.embedding_window,
            generation_defaults=GenerationDefaultsCard(**ctx.generation_defaults),
        )

    def models(self) -> ModelList:
        return ModelList(data=[self.card()])


@router.get("/health", **documented(HealthResponse))
async def health(request: Request) -> JSONResponse:
    """Answered on the event loop, never queued behind model compute."""
    return ServingModels.respond(ServingModels(request).health())


@router.get("/v1/models", **documented(ModelList))
async def list_models(request: Request) -> JSONResponse:
    return ServingModels.respond(ServingModels(request).models())


@router.get("/v1/models/{model_id:path}", **documented(ModelCard))
async def get_model(model_id: str, request: Request) -> JSONResponse:
    return ServingModels.respond(ServingModels(request).card(model_id))
