"""``POST /v1/embeddings`` in the OpenAI shape, served through the micro-batcher."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .context import ServingContext, serving
from .errors import APIError
from .schemas import EmbeddingRequest, parse_body

router = APIRouter()


def normalize_input(ctx: ServingContext, raw: object) -> list[str | list[int]]:
    """The four OpenAI input forms as a list of texts / token-id lists, checked against limits."""
    if isinstance(raw, str):
        items: list[str | list[int]] = [raw]
    elif raw and all(isinstance(t, int) for t in raw):  # type: ignore[union-attr]
        items = [list(raw)]  # type: ignore[arg-type]
    else:
        items = list(raw)  # type: ignore[arg-type]
    if not items:
        raise APIError(400, "input is empty", param="input", code="invalid_value")
    if len(items) > ctx.limits.max_inputs:
        raise APIError(
            400,
            f"input holds {len(items)} items; the limit is {ctx.limits.max_inputs}",
            param="input",
            code="too_many_inputs",
        )
    for i, item in enumerate(items):
        if not isinstance(item, str):
            ctx.check_ids(item, f"input[{i}]")
    return items


def encode_vector(vec: np.ndarray, dimensions: int | None, fmt: str) -> list[float] | str:
    """Cut to ``dimensions`` and re-normalise (OpenAI semantics), then float list or base64
    of little-endian float32 (what the SDK decodes)."""
    if dimensions is not None and dimensions < vec.shape[0]:
        vec = vec[:dimensions]
        vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
    vec = np.ascontiguousarray(vec, dtype="<f4")
    if fmt == "base64":
        return base64.b64encode(vec.tobytes()).decode("ascii")
    return vec.tolist()


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> JSONResponse:
    ctx = serving(request)
    req = await parse_body(request, EmbeddingRequest)
    ctx.check_model(req.model)
    if req.dimensions is not None and req.dimensions > ctx.embedding_dim:
        raise APIError(
            400,
            f"dimensions={req.dimensions} exceeds the model's {ctx.embedding_dim}",
            param="dimensions",
            code="invalid_value",
        )
    items = normalize_input(ctx, req.input)
    async with ctx.admit():
        results = await ctx.batcher.submit(items)
    tokens = sum(n for _, n in results)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": encode_vector(vec, req.dimensions, req.encoding_format),
        }
        for i, (vec, _) in enumerate(results)
    ]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": ctx.model_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
