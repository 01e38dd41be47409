"""``POST /v1/rag`` on a real uvicorn: the same answer and sources as ``RagEngine.ask``."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import httpx
import pytest

from gemlm.rag.ask import DEFAULT_ANSWER_TOKENS, RagEngine, Source
from gemlm.rag.indexing import index_paths
from gemlm.rag.store import RagStore
from gemlm.serving import create_app, serve_in_thread
from gemlm.serving.protocol import RagAnswerResponse, RagDeltaEvent, RagSource, RagSourcesEvent

from ..rag.conftest import make_docs
from .conftest import events, same

Q = "what is the capital of france"


@pytest.fixture(scope="module")
def rag_server(gem, tmp_path_factory):
    root = tmp_path_factory.mktemp("rag")
    with RagStore(root / "q") as store:
        index_paths(gem, store, "c", [make_docs(root / "docs")], model_id="tiny", chunk_tokens=16)
        engine = RagEngine(gem, store, "c", model_id="tiny", top_k=2)
        app = create_app(gem, model_name="tiny-gem", rag=engine)
        with serve_in_thread(app) as url:
            yield url, engine


def test_rag_answers_like_the_engine(rag_server) -> None:
    url, engine = rag_server
    want = engine.ask(Q, max_new_tokens=6)
    r = httpx.post(f"{url}/v1/rag", json={"question": Q, "max_tokens": 6}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "rag.answer" and body["answer"] == want.answer
    assert [s["text"] for s in body["sources"]] == [s.text for s in want.sources]
    assert [s["rank"] for s in body["sources"]] == [1, 2]
    u = body["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["completion_tokens"] == want.completion_tokens


def test_rag_stream_sources_then_deltas_then_answer(rag_server) -> None:
    url, engine = rag_server
    want = engine.ask(Q, max_new_tokens=6)
    with httpx.stream(
        "POST", f"{url}/v1/rag", json={"question": Q, "max_tokens": 6, "stream": True}, timeout=60
    ) as r:
        assert r.status_code == 200
        lines = [ln[6:] for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    events = [json.loads(x) for x in lines[:-1]]
    assert events[0]["object"] == "rag.sources" and len(events[0]["sources"]) == 2
    assert events[-1]["object"] == "rag.answer" and events[-1]["answer"] == want.answer
    deltas = "".join(e["delta"] for e in events if e["object"] == "rag.delta")
    assert deltas.strip() == want.answer


def test_rag_defaults_are_brief_and_report_what_the_answer_cites(rag_server) -> None:
    url, engine = rag_server
    want = engine.ask(Q)  # the engine's defaults: short budget, stops, the model's sampling
    r = httpx.post(f"{url}/v1/rag", json={"question": Q}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"] == want.answer and body["cited"] == want.cited
    assert body["finish_reason"] == want.finish_reason
    assert 1 <= body["usage"]["completion_tokens"] <= DEFAULT_ANSWER_TOKENS
    assert [s["rank"] for s in body["sources"]] == list(range(1, len(body["sources"]) + 1))
    seeded = {"question": Q, "max_tokens": 6, "temperature": 0.8, "top_p": 0.9, "seed": 4}
    one, two = (httpx.post(f"{url}/v1/rag", json=seeded, timeout=60).json() for _ in range(2))
    assert one["answer"] == two["answer"]


def test_rag_answer_and_events_are_their_models(rag_server) -> None:
    url, _ = rag_server
    r = httpx.post(f"{url}/v1/rag", json={"question": Q, "max_tokens": 6}, timeout=60)
    same(RagAnswerResponse, r.json())
    body = {"question": Q, "max_tokens": 6, "stream": True}
    first, *deltas, last = events(httpx.post(f"{url}/v1/rag", json=body, timeout=60))
    same(RagSourcesEvent, first)
    for delta in deltas:
        same(RagDeltaEvent, delta)
    same(RagAnswerResponse, last)
    assert first["id"] == last["id"] and first["sources"] == last["sources"]


def test_rag_source_model_has_the_engines_fields() -> None:
    assert list(RagSource.model_fields) == [f.name for f in fields(Source)]


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"question": ""}, 400, None),
        ({"question": 5}, 400, None),
        ({"question": Q, "top_k": 0}, 400, None),
        ({"question": "word " * 400}, 400, "QuestionTooLong"),
        ({"question": Q, "model": "other"}, 404, "model_not_found"),
        ({"question": Q, "top_p": 0}, 400, "invalid_value"),
        ({"question": Q, "max_tokens": 10**6}, 400, None),
    ],
)
def test_rag_bad_requests(rag_server, body, status, code) -> None:
    url, _ = rag_server
    r = httpx.post(f"{url}/v1/rag", json=body, timeout=60)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and (code is None or err["code"] == code)


def test_rag_route_without_a_collection_is_a_clear_404(server) -> None:
    r = httpx.post(f"{server.v1}/rag", json={"question": Q}, headers=server.headers(), timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "rag_not_configured"


def test_serve_cli_refuses_a_missing_collection(tiny_llama_dir, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gemlm.cli import app

    res = CliRunner().invoke(
        app,
        [
            "serve",
            "--model",
            str(tiny_llama_dir),
            "--dtype",
            "float32",
            "--rag-collection",
            "nope",
            "--qdrant-path",
            str(tmp_path / "q"),
        ],
    )
    assert res.exit_code == 2 and "nope" in res.output
