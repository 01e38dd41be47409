"""``create_app``: the FastAPI app serving one ``GEMModel`` for embeddings and generation.

Routes live in one module per family (``api_embeddings``, ``api_completions``, ``api_rag``,
``api_models``), each route handing its request to that endpoint's handler class
(``handler.py``); request and response bodies are the models of ``protocol.py``. Routers are
plain ``APIRouter``s, so a later feature adds its own: pass it in ``routers`` (its handlers reach
the model worker, the embedding batcher and the limits through ``request.app.state.serving``,
and the RAG object given as ``rag`` through ``request.app.state.rag``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from pydantic.json_schema import models_json_schema

from . import api_completions, api_embeddings, api_models, api_rag, protocol
from .context import BatchSettings, ServeLimits, ServingContext
from .errors import install_error_handlers
from .guard import Guard

if TYPE_CHECKING:
    from gemlm.model import GEMModel


def create_app(
    gem: GEMModel,
    *,
    model_name: str,
    api_key: str | None = None,
    limits: ServeLimits | None = None,
    batching: BatchSettings | None = None,
    rag: Any = None,
    routers: Iterable[APIRouter] = (),
) -> FastAPI:
    """An app answering ``/v1/embeddings``, ``/v1/completions``, ``/v1/chat/completions``,
    ``/v1/models`` and ``/health`` from ``gem``; requests naming another model get a 404.

    ``rag`` (a ``gemlm.rag.RagEngine``) answers ``POST /v1/rag``; without it that route is a 404.
    ``api_key`` requires ``Authorization: Bearer <key>`` on ``/v1/*`` (``/health`` stays open).
    """
    limits = limits or ServeLimits()
    ctx = ServingContext(
        gem, model_name=model_name, limits=limits, batching=batching or BatchSettings()
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await ctx.aclose()  # after uvicorn has let in-flight requests finish

    app = FastAPI(
        title="gemlm",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.serving = ctx
    app.state.rag = rag
    install_error_handlers(app)
    base = (api_models.router, api_embeddings.router, api_completions.router, api_rag.router)
    for router in (*base, *routers):
        app.include_router(router)
    app.add_middleware(Guard, api_key=api_key, max_body_bytes=limits.max_body_bytes)
    _publish_protocol(app)
    return app


def _publish_protocol(app: FastAPI) -> None:
    """``app.openapi()`` holds every protocol model: the request bodies and stream events the
    routes refer to are parsed and rendered by the handlers, not by FastAPI, so it would not
    list them. (The server does not serve the schema: ``openapi_url`` is off.)"""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _, defs = models_json_schema(
                [(m, "validation") for m in protocol.REQUESTS]
                + [(m, "serialization") for m in protocol.RESPONSES],
                ref_template="#/components/schemas/{model}",
            )
            known = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, body in defs.get("$defs", {}).items():
                known.setdefault(name, body)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
