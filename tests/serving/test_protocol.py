"""Every endpoint answers with its protocol model, field for field and in its order, plain,
streamed or failed; the OpenAPI schema lists every request and response model."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
import pytest

from gemlm.serving.protocol import (
    REQUESTS,
    RESPONSES,
    ChatCompletionResponse,
    ChatCompletionStreamResponse,
    CompletionResponse,
    CompletionStreamResponse,
    DeltaMessage,
    EmbeddingResponse,
    ErrorResponse,
    HealthResponse,
    ModelCard,
    ModelList,
)

from .conftest import MODEL, Server, events, same

MSG = [{"role": "user", "content": "hi"}]


def call(server: Server, path: str, body: Any = None) -> httpx.Response:
    if body is None:
        return httpx.get(server.url + path, headers=server.headers(), timeout=30)
    return httpx.post(server.url + path, json=body, headers=server.headers(), timeout=30)


@pytest.mark.parametrize(
    ("path", "body", "model"),
    [
        ("/v1/embeddings", {"input": ["a", ""], "encoding_format": "float"}, EmbeddingResponse),
        ("/v1/embeddings", {"input": "a", "encoding_format": "base64"}, EmbeddingResponse),
        ("/v1/completions", {"prompt": ["a", "b"], "n": 2, "max_tokens": 3}, CompletionResponse),
        ("/v1/chat/completions", {"messages": MSG, "max_tokens": 3}, ChatCompletionResponse),
        ("/v1/models", None, ModelList),
        (f"/v1/models/{MODEL}", None, ModelCard),
        ("/health", None, HealthResponse),
    ],
)
def test_every_response_is_its_model(server, path, body, model) -> None:
    r = call(server, path, body)
    assert r.status_code == 200, r.text
    same(model, r.json())


def test_base64_is_little_endian_float32_of_the_floats(server) -> None:
    body = {"input": ["the cat", "stocks fell"], "dimensions": 12}
    floats = call(server, "/v1/embeddings", {**body, "encoding_format": "float"}).json()
    packed = call(server, "/v1/embeddings", {**body, "encoding_format": "base64"}).json()
    for f, b in zip(floats["data"], packed["data"], strict=True):
        got = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        np.testing.assert_array_equal(got, np.asarray(f["embedding"], dtype="<f4"))


@pytest.mark.parametrize("usage", [False, True])
@pytest.mark.parametrize(
    ("path", "body", "model"),
    [
        ("/v1/completions", {"prompt": ["a", "b"], "n": 2}, CompletionStreamResponse),
        ("/v1/chat/completions", {"messages": MSG, "n": 2}, ChatCompletionStreamResponse),
    ],
)
def test_every_stream_chunk_is_its_model(server, path, body, model, usage) -> None:
    body = {**body, "max_tokens": 3, "stream": True, "stream_options": {"include_usage": usage}}
    chunks = events(call(server, path, body))
    for chunk in chunks:
        assert ("usage" in chunk) is usage  # null on each chunk only when asked for
        same(model, chunk, **({} if usage else {"exclude": {"usage"}}))
    if usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_chat_deltas_carry_only_what_they_add() -> None:
    assert DeltaMessage(role="assistant", content="").model_dump() == {
        "role": "assistant",
        "content": "",
    }
    assert DeltaMessage(content="hi").model_dump() == {"content": "hi"}
    assert DeltaMessage().model_dump() == {}


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/embeddings", {"input": 5}, 400),
        ("POST", "/v1/chat/completions", {"messages": MSG, "model": "other"}, 404),
        ("GET", "/v1/embeddings", None, 405),
        ("GET", "/v1/nothing", None, 404),
        ("GET", "/v1/models", None, 401),  # without the key
    ],
)
def test_every_error_is_the_error_model(server, method, path, body, status) -> None:
    headers = server.headers() if status != 401 else {}
    r = httpx.request(method, server.url + path, json=body, headers=headers, timeout=30)
    assert r.status_code == status
    same(ErrorResponse, r.json())


def test_a_stream_that_fails_ends_with_the_error_model(server, monkeypatch) -> None:
    def fail(ids, sampling, on_text=None, cancel=None, **kwargs):
        on_text("piece")
        raise RuntimeError("boom")

    monkeypatch.setattr(server.gem, "complete", fail)
    body = {"messages": MSG, "max_tokens": 3, "stream": True}
    *chunks, error = events(call(server, "/v1/chat/completions", body))
    same(ErrorResponse, error)
    assert error["error"] == {
        "message": "generation failed: RuntimeError: boom",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "piece"},
    ]


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def test_openapi_lists_every_request_and_response_model(server) -> None:
    schema = server.app.openapi()
    models = schema["components"]["schemas"]
    assert {m.__name__ for m in (*REQUESTS, *RESPONSES)} <= set(models)
    assert {r.rsplit("/", 1)[1] for r in refs(schema)} <= set(models)  # no dangling reference

    def ref(op: dict[str, Any], status: str, media: str = "application/json") -> Any:
        return op["responses"][status]["content"][media]["schema"]

    want = {
        ("post", "/v1/embeddings"): ("EmbeddingRequest", "EmbeddingResponse", None),
        ("post", "/v1/completions"): (
            "CompletionRequest",
            "CompletionResponse",
            ["CompletionStreamResponse"],
        ),
        ("post", "/v1/chat/completions"): (
            "ChatCompletionRequest",
            "ChatCompletionResponse",
            ["ChatCompletionStreamResponse"],
        ),
        ("post", "/v1/rag"): (
            "RagRequest",
            "RagAnswerResponse",
            ["RagSourcesEvent", "RagDeltaEvent", "RagAnswerResponse"],
        ),
        ("get", "/v1/models"): (None, "ModelList", None),
        ("get", "/v1/models/{model_id}"): (None, "ModelCard", None),
        ("get", "/health"): (None, "HealthResponse", None),
    }
    for (method, path), (request, response, stream) in want.items():
        op = schema["paths"][path][method]
        at = "#/components/schemas/"
        assert ref(op, "200") == {"$ref": at + response}, path
        assert ref(op, "default") == {"$ref": at + "ErrorResponse"}, path
        if request:
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert body == {"$ref": at + request}, path
        if stream:
            one_of = ref(op, "200", "text/event-stream")["oneOf"]
            assert one_of == [{"$ref": at + m} for m in (*stream, "ErrorResponse")], path
