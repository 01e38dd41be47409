"""OpenAI-compatible HTTP serving: embeddings, completions and chat from one GEM model.

``create_app`` builds the FastAPI app around a loaded ``GEMModel``; ``run_server`` runs it with
uvicorn (``gemlm serve``). Every request and response body is a model of ``protocol``; each
endpoint has one handler class (``handler.py`` and the ``api_*`` modules) that validates its
request once and builds its response from the protocol model. All model compute goes through one
worker thread (``ModelWorker``), and concurrent embedding requests are gathered into
micro-batches (``MicroBatcher``).
"""

from __future__ import annotations

from .app import create_app
from .batcher import MicroBatcher, ModelWorker
from .context import BatchSettings, ServeLimits, ServingContext
from .server import run_server, serve_in_thread

__all__ = [
    "BatchSettings",
    "MicroBatcher",
    "ModelWorker",
    "ServeLimits",
    "ServingContext",
    "create_app",
    "run_server",
    "serve_in_thread",
]
