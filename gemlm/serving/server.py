"""Running the app with uvicorn: ``run_server`` (the CLI) and ``serve_in_thread`` (tests).

Shutdown is graceful: on SIGINT/SIGTERM uvicorn stops accepting connections, waits up to
``graceful_timeout`` seconds for in-flight requests, then the app's lifespan stops running
generations, drains the embedding batcher and ends the model worker thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI

from .app import create_app
from .context import BatchSettings, ServeLimits

if TYPE_CHECKING:
    from gemlm.model import GEMModel


def run_server(
    gem: GEMModel,
    *,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    limits: ServeLimits | None = None,
    batching: BatchSettings | None = None,
    graceful_timeout: int = 10,
    log_level: str = "info",
    rag: Any = None,
) -> None:
    """Serve ``gem`` until SIGINT/SIGTERM (blocking); ``rag`` (a ``RagEngine``) adds /v1/rag."""
    app = create_app(
        gem, model_name=model_name, api_key=api_key, limits=limits, batching=batching, rag=rag
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=graceful_timeout,
        server_header=False,
    )
    uvicorn.Server(config).run()


@contextmanager
def serve_in_thread(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0
) -> Iterator[str]:
    """Run ``app`` on a real uvicorn in a background thread; yields its base URL.

    ``port=0`` binds a free port (the socket is bound here, so there is no race).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, lifespan="on")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="gemlm-uvicorn", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
