"""Bad requests over raw HTTP: always a 4xx in the OpenAI error shape, never a 500 or a crash."""

from __future__ import annotations

import httpx
import openai
import pytest

from .conftest import LIMITS, MODEL, Server

EMB, CHAT, COMP = "/v1/embeddings", "/v1/chat/completions", "/v1/completions"
MSG = [{"role": "user", "content": "hi"}]


def post(server: Server, path: str, body: object = None, *, content: bytes | None = None, **kw):
    headers = {**server.headers(), **kw.pop("headers", {})}
    if content is None:
        return httpx.post(server.url + path, json=body, headers=headers, timeout=30, **kw)
    return httpx.post(server.url + path, content=content, headers=headers, timeout=30, **kw)


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert {"message", "type", "code"} <= set(err) and err["message"]
    if code is not None:
        assert err["code"] == code, err


def test_api_key_required(server) -> None:
    r = httpx.post(server.url + EMB, json={"input": "x"})
    assert_error(r, 401, "invalid_api_key")
    r = httpx.get(server.url + "/v1/models", headers={"Authorization": "Bearer wrong"})
    assert_error(r, 401, "invalid_api_key")
    bad = openai.OpenAI(base_url=server.v1, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.embeddings.create(model=MODEL, input="x")


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b'{"input": "x",', "invalid_json"),
        (b"\xff\xfe{not utf-8}", "invalid_body"),
        (b'["input"]', "invalid_json"),
        (b'{"input": "\\ud800"}', "invalid_body"),
        (b"[" * 60_000, "invalid_json"),
    ],
)
def test_malformed_bodies(server, content, code) -> None:
    assert_error(post(server, EMB, content=content), 400, code)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (EMB, {"input": 5}),
        (EMB, {"input": ["a", 1]}),
        (EMB, {"input": [True, False]}),
        (EMB, {"input": [-1, 5]}),
        (EMB, {"input": "x", "encoding_format": "int8"}),
        (EMB, {"input": "x", "dimensions": "8"}),
        (EMB, {"input": "x", "dimensions": 0}),
        (EMB, {}),
        (CHAT, {"messages": "hi"}),
        (CHAT, {"messages": []}),
        (CHAT, {"messages": [{"content": "no role"}]}),
        (CHAT, {"messages": MSG, "temperature": "hot"}),
        (CHAT, {"messages": MSG, "max_tokens": True}),
        (CHAT, {"messages": MSG, "max_tokens": 0}),
        (CHAT, {"messages": MSG, "top_p": 0}),
        (CHAT, {"messages": MSG, "seed": 2**70}),
        (COMP, {"prompt": None}),
        (COMP, {"prompt": "x", "stop": 3}),
    ],
)
def test_wrong_types_and_values(server, path, body) -> None:
    assert_error(post(server, path, body), 400, "invalid_value")


def test_nan_is_not_a_float(server) -> None:
    body = b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'
    assert_error(post(server, CHAT, content=body), 400, "invalid_value")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (EMB, {"input": []}),
        (EMB, {"input": [[]]}),
        (EMB, {"input": ["x"] * (LIMITS.max_inputs + 1)}),
        (EMB, {"input": [[5] * (LIMITS.max_input_tokens + 1)]}),
        (EMB, {"input": [10**6]}),
        (EMB, {"input": "x", "dimensions": 33}),
        (COMP, {"prompt": ""}),
        (COMP, {"prompt": [1] * 250, "max_tokens": 10}),  # prompt + output > 256 context
        (COMP, {"prompt": "x", "max_tokens": LIMITS.max_output_tokens + 1}),
        (COMP, {"prompt": ["x"] * (LIMITS.max_prompts + 1)}),
        (COMP, {"prompt": "x", "n": LIMITS.max_n + 1}),
        (COMP, {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}),
        (COMP, {"prompt": "x", "logprobs": 2}),
        (CHAT, {"messages": MSG, "max_completion_tokens": LIMITS.max_output_tokens + 1}),
        (CHAT, {"messages": MSG, "tools": [{"type": "function"}]}),
        (CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
    ],
)
def test_limits_and_unsupported(server, path, body) -> None:
    assert_error(post(server, path, body), 400)


def test_unknown_model_is_404(server) -> None:
    assert_error(post(server, EMB, {"input": "x", "model": "gpt-4"}), 404, "model_not_found")
    assert_error(post(server, CHAT, {"messages": MSG, "model": "nope"}), 404, "model_not_found")
    r = httpx.get(server.v1 + "/models/nope", headers=server.headers())
    assert_error(r, 404, "model_not_found")


def test_body_too_large_declared_and_chunked(server) -> None:
    big = b'{"input": "' + b"a" * (LIMITS.max_body_bytes + 10) + b'"}'
    assert_error(post(server, EMB, content=big), 413, "request_too_large")

    def chunks():
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    r = httpx.post(server.url + EMB, content=chunks(), headers=server.headers(), timeout=30)
    assert_error(r, 413, "request_too_large")


def test_unknown_route_and_method(server) -> None:
    assert_error(httpx.get(server.v1 + "/nothing", headers=server.headers()), 404)
    assert_error(httpx.get(server.url + EMB, headers=server.headers()), 405)


def test_still_alive_after_all_that(server) -> None:
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    r = post(server, EMB, {"input": "still here"})
    assert r.status_code == 200 and len(r.json()["data"][0]["embedding"]) == 32
