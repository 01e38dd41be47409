"""Concurrency and lifecycle: /health while the model is busy, batching over HTTP, shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
from typer.testing import CliRunner

from gemlm.cli import app as cli_app
from gemlm.serving import create_app, serve_in_thread

from .conftest import Server


def embed(server: Server, texts: list[str]) -> httpx.Response:
    return httpx.post(
        server.v1 + "/embeddings", json={"input": texts}, headers=server.headers(), timeout=30
    )


def test_health_answers_while_the_model_is_busy_and_requests_are_batched(server) -> None:
    ctx = server.app.state.serving
    gate = threading.Event()
    ctx.worker.submit(gate.wait)  # a long "generation" holds the model worker
    texts = [f"the cat number {i}" for i in range(6)]
    before = ctx.batcher.batches
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(embed, server, [t]) for t in texts]
        deadline = time.monotonic() + 10
        while ctx.pending < 6 and time.monotonic() < deadline:
            t0 = time.monotonic()
            health = httpx.get(server.url + "/health", timeout=5)
            assert health.status_code == 200 and time.monotonic() - t0 < 1.0
            time.sleep(0.02)
        assert ctx.pending == 6 and not any(f.done() for f in futures)
        gate.set()
        results = [f.result() for f in futures]
    assert all(r.status_code == 200 for r in results)
    got = np.array([r.json()["data"][0]["embedding"] for r in results])
    np.testing.assert_allclose(got, server.gem.encode(texts), atol=1e-5)
    assert ctx.batcher.batches - before <= 2  # gathered (max_batch=8), not one job each


def test_an_embedding_request_runs_between_the_tokens_of_a_generation(server) -> None:
    """A generation holds the worker; an embedding batch that arrives meanwhile runs between
    two of its tokens (inline, on the generating thread), not after the whole generation."""
    ctx = server.app.state.serving
    hooks = ctx.gem.generator.between_tokens
    assert ctx.worker.run_urgent in hooks  # added by the server

    def first_token_waits() -> int:  # hold the first token until the embedding batch queues
        deadline = time.monotonic() + 10
        while not ctx.worker._urgent and not waited and time.monotonic() < deadline:
            time.sleep(0.005)
        waited.append(True)
        return ctx.worker.run_urgent()

    waited: list[bool] = []
    before = ctx.worker.urgent_inline
    ctx.gem.generator.between_tokens = [first_token_waits]
    try:
        with ThreadPoolExecutor(1) as pool:
            chat = pool.submit(
                httpx.post,
                server.v1 + "/chat/completions",
                json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                headers=server.headers(),
                timeout=30,
            )
            deadline = time.monotonic() + 10
            while not ctx.worker.busy and time.monotonic() < deadline:
                time.sleep(0.005)
            r = embed(server, ["the cat sat on the mat"])
            assert r.status_code == 200 and chat.result().status_code == 200
    finally:
        ctx.gem.generator.between_tokens = hooks
    assert ctx.worker.urgent_inline == before + 1
    got = np.array(r.json()["data"][0]["embedding"])
    np.testing.assert_allclose(got, server.gem.encode(["the cat sat on the mat"])[0], atol=1e-5)


def test_in_thread_shutdown_ends_the_worker(gem) -> None:
    app = create_app(gem, model_name="m")
    with serve_in_thread(app) as url:
        r = httpx.post(url + "/v1/embeddings", json={"input": "x"})  # no key configured
        assert r.status_code == 200
    assert app.state.serving.worker.closed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_runs_and_stops_gracefully_on_sigterm(tiny_llama_dir) -> None:
    assert "--api-key" in CliRunner().invoke(cli_app, ["serve", "--help"]).output
    port = free_port()
    cmd = [sys.executable, "-m", "gemlm.cli", "serve", "--model", str(tiny_llama_dir)]
    cmd += ["--dtype", "float32", "--port", str(port), "--model-name", "tiny"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ}
    )
    try:
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={
                "model": "tiny",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 3,
            },
        )
        assert r.status_code == 200 and r.json()["model"] == "tiny"
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: the conventional exit status
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
