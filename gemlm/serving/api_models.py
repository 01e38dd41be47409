"""``GET /health``, ``GET /v1/models`` and ``GET /v1/models/{id}``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from .context import serving

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> dict[str, object]:
    """Answered on the event loop, never queued behind model compute."""
    ctx = serving(request)
    return {
        "status": "ok",
        "model": ctx.model_name,
        "pending": ctx.pending,
        "embedding_batches": ctx.batcher.batches,
    }


def _card(request: Request) -> dict[str, object]:
    ctx = serving(request)
    return {
        "id": ctx.model_name,
        "object": "model",
        "created": ctx.created,
        "owned_by": "gemlm",
        "max_model_len": ctx.context_length,
        "embedding_dimension": ctx.embedding_dim,
    }


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, object]:
    return {"object": "list", "data": [_card(request)]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict[str, object]:
    serving(request).check_model(model_id)
    return _card(request)
