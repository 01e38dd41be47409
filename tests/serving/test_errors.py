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


def test_non_text_content_names_the_part(server) -> None:
    parts = [{"type": "text", "text": "look"}, {"type": "image_url"}]
    r = post(server, CHAT, {"messages": [MSG[0], {"role": "user", "content": parts}]})
    assert_error(r, 400, "unsupported_content")
    assert r.json()["error"]["param"] == "messages[1].content[1]"
    assert r.json()["error"]["message"].startswith("messages[1].content[1]: content part type")


@pytest.mark.parametrize(
    ("path", "body", "param", "message"),
    [
        (
            EMB,
            {"input": [-1, 5]},
            "input",
            "input: token ids must be non-negative integers; position 0 holds -1",
        ),
        (
            EMB,
            {"input": [[1, 2], [3, 4], [5, 6], [7, -8]]},
            "input[3]",
            "input[3]: token ids must be non-negative integers; position 1 holds -8",
        ),
        (
            EMB,
            {"input": [[1, 2], [3, True]]},
            "input[1]",
            "input[1]: token ids must be non-negative integers; position 1 holds true",
        ),
        (
            EMB,
            {"input": ["a", 1]},
            "input[1]",
            "input[1]: expected a string like input[0]; got an integer",
        ),
        (
            EMB,
            {"input": [[1], "a"]},
            "input[1]",
            "input[1]: expected a list of token ids like input[0]; got a string",
        ),
        (
            EMB,
            {"input": 5},
            "input",
            "input: must be a string, a list of strings, a list of token ids, or a list of "
            "token-id lists; got an integer",
        ),
        (EMB, {}, "input", "input is required"),
        (
            COMP,
            {"prompt": [{"a": 1}]},
            "prompt[0]",
            "prompt[0]: expected a string or a list of token ids; got an object",
        ),
        (
            COMP,
            {"prompt": "x", "stop": 3},
            "stop",
            "stop: must be a string or a list of strings; got an integer",
        ),
        (
            COMP,
            {"prompt": "x", "stop": ["a", 2]},
            "stop[1]",
            "stop[1]: expected a string; got an integer",
        ),
        (
            CHAT,
            {"messages": [{"content": "no role"}]},
            "messages[0].role",
            "messages[0].role is required",
        ),
        (
            CHAT,
            {"messages": [MSG[0], {"role": "bot", "content": "x"}]},
            "messages[1].role",
            "messages[1].role: 'bot' is not a chat role; use system, developer, user or assistant",
        ),
        (
            CHAT,
            {"messages": [{"role": "tool", "content": "42"}]},
            "messages[0].role",
            "messages[0].role: 'tool' messages answer tool calls, which this server never makes",
        ),
        (
            CHAT,
            {"messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
            "messages[0].content: must be a string or a list of content parts; got an integer",
        ),
        (
            CHAT,
            {"messages": MSG, "response_format": {"type": "json_object"}},
            "response_format.type",
            "response_format.type: 'json_object' is not supported: this server generates plain "
            'text; send {"type": "text"} or leave response_format out',
        ),
        (
            CHAT,
            {"messages": MSG, "temperature": "hot"},
            "temperature",
            'temperature: Input should be a valid number (got "hot")',
        ),
        (
            CHAT,
            {"messages": MSG, "frequency_penalty": 2.5},
            "frequency_penalty",
            "frequency_penalty: Input should be less than or equal to 2 (got 2.5)",
        ),
        (
            COMP,
            {"prompt": "x", "presence_penalty": -3},
            "presence_penalty",
            "presence_penalty: Input should be greater than or equal to -2 (got -3)",
        ),
        (
            COMP,
            {"prompt": "x", "repetition_penalty": 0},
            "repetition_penalty",
            "repetition_penalty: Input should be greater than 0 (got 0)",
        ),
        (
            COMP,
            {"prompt": "x", "top_k": -2},
            "top_k",
            "top_k: Input should be greater than or equal to -1 (got -2)",
        ),
        (
            EMB,
            {"input": "x", "truncate": "yes"},
            "truncate",
            'truncate: Input should be a valid boolean (got "yes")',
        ),
    ],
)
def test_validation_errors_name_the_field_and_index_in_plain_words(
    server, path, body, param, message
) -> None:
    r = post(server, path, body)
    assert_error(r, 400, "invalid_value")
    err = r.json()["error"]
    assert (err["param"], err["message"]) == (param, message)
