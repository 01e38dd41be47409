"""The server through the official ``openai`` client: results equal ``GEMModel`` called directly."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest

from .conftest import API_KEY, MODEL, Server

TEXTS = ["the cat sat on the mat", "paris is the capital of france", "", "stocks fell"]
CHAT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the cat"}]


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=API_KEY, max_retries=0, timeout=30)


def test_embeddings_default_base64_equal_encode(client, server) -> None:
    res = client.embeddings.create(model=MODEL, input=TEXTS)  # the SDK asks for base64
    got = np.array([d.embedding for d in res.data])
    np.testing.assert_allclose(got, server.gem.encode(TEXTS), atol=1e-5)
    assert [d.index for d in res.data] == [0, 1, 2, 3] and res.object == "list"
    ids, _ = server.gem.tokenize_for_embedding(TEXTS)
    assert res.usage.prompt_tokens == res.usage.total_tokens == sum(map(len, ids))
    one = client.embeddings.create(model=MODEL, input="stocks fell")
    np.testing.assert_allclose(one.data[0].embedding, got[3], atol=1e-5)


def test_embeddings_float_and_dimensions(client, server) -> None:
    res = client.embeddings.create(
        model=MODEL, input=TEXTS[:2], encoding_format="float", dimensions=8
    )
    full = server.gem.encode(TEXTS[:2])[:, :8]
    want = full / np.linalg.norm(full, axis=1, keepdims=True)
    got = np.array([d.embedding for d in res.data])
    assert got.shape == (2, 8)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)


def test_chat_matches_model_and_streams_the_same(client, server) -> None:
    res = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=12, temperature=0)
    assert res.object == "chat.completion" and res.id.startswith("chatcmpl-")
    assert res.choices[0].message.role == "assistant"
    assert res.choices[0].message.content == server.gem.chat(CHAT, max_new_tokens=12)
    prompt_ids = server.gem.tokenizer(server.gem.chat_prompt(CHAT), add_special_tokens=False)
    assert res.usage.prompt_tokens == len(prompt_ids["input_ids"])
    assert res.usage.total_tokens == res.usage.prompt_tokens + res.usage.completion_tokens
    assert res.choices[0].finish_reason in ("stop", "length")

    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=CHAT,
            max_completion_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == res.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == res.choices[0].finish_reason and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == res.usage.total_tokens


def test_completions_plain_stream_stop_and_n(client, server) -> None:
    res = client.completions.create(model=MODEL, prompt="the cat", max_tokens=10, temperature=0)
    want = server.gem.complete("the cat", max_new_tokens=10)
    assert res.object == "text_completion" and res.choices[0].text == want.text
    assert res.usage.completion_tokens == want.completion_tokens
    assert res.choices[0].finish_reason == want.finish_reason

    streamed = client.completions.create(
        model=MODEL, prompt="the cat", max_tokens=10, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == want.text

    if want.text[2:6]:
        stop = want.text[2:6]
        cut = client.completions.create(
            model=MODEL, prompt="the cat", max_tokens=10, temperature=0, stop=[stop]
        )
        assert cut.choices[0].text == want.text[: want.text.find(stop)]
        assert cut.choices[0].finish_reason == "stop"

    two = client.completions.create(
        model=MODEL, prompt=["the cat", "a dog"], max_tokens=4, n=2, temperature=0.9, seed=3
    )
    assert [c.index for c in two.choices] == [0, 1, 2, 3]
    again = client.completions.create(
        model=MODEL, prompt=["the cat", "a dog"], max_tokens=4, n=2, temperature=0.9, seed=3
    )
    assert [c.text for c in two.choices] == [c.text for c in again.choices]  # seeded


def test_models_and_health(client, server) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL] and models.data[0].object == "model"
    assert client.models.retrieve(MODEL).id == MODEL
    card = models.data[0].model_dump()
    assert card["generation_defaults"] == server.gem.generation_defaults
    assert card["embedding_max_tokens"] == server.gem.config.max_length
    assert card["max_model_len"] == server.gem.context_length
    health = httpx.get(server.url + "/health")  # open without the key
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_models_report_the_defaults_a_request_without_sampling_gets(
    client, server, monkeypatch
) -> None:
    """As vLLM: a request that omits temperature / top_p samples with the model's defaults."""
    seen: list[dict] = []
    real = server.gem.model.generate

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(server.gem.model, "generate", spy)
    config = server.gem.model.generation_config
    for key, value in dict(do_sample=True, temperature=0.3, top_p=0.85, top_k=7).items():
        monkeypatch.setattr(config, key, value)
    card = client.models.retrieve(MODEL).model_dump()["generation_defaults"]
    assert card == {
        "temperature": 0.3,
        "top_p": 0.85,
        "top_k": 7,
        "repetition_penalty": 1.0,
        "source": "generation_config",
    }
    client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=3)
    assert seen[-1]["do_sample"] is True
    assert (seen[-1]["temperature"], seen[-1]["top_p"], seen[-1]["top_k"]) == (0.3, 0.85, 7)
    client.completions.create(model=MODEL, prompt="the cat", max_tokens=3, temperature=0)
    assert seen[-1]["do_sample"] is False  # asked: greedy


def test_penalties_reach_the_engine(client, server) -> None:
    settings = dict(frequency_penalty=1.5, presence_penalty=0.5, repetition_penalty=1.7)
    res = client.completions.create(
        model=MODEL, prompt="the cat", max_tokens=12, temperature=0, extra_body=settings
    )
    want = server.gem.complete("the cat", max_new_tokens=12, temperature=0, **settings)
    plain = server.gem.complete("the cat", max_new_tokens=12, temperature=0)
    assert res.choices[0].text == want.text != plain.text
    chat = client.chat.completions.create(
        model=MODEL,
        messages=CHAT,
        max_tokens=12,
        temperature=0,
        frequency_penalty=2.0,
        presence_penalty=-0.5,
        extra_body={"top_k": -1},
    )
    want = server.gem.complete(
        CHAT,
        chat=True,
        max_new_tokens=12,
        temperature=0,
        frequency_penalty=2.0,
        presence_penalty=-0.5,
    )
    assert chat.choices[0].message.content == want.text


def test_response_format_text_is_honoured(client, server) -> None:
    res = client.chat.completions.create(
        model=MODEL, messages=CHAT, max_tokens=6, temperature=0, response_format={"type": "text"}
    )
    assert res.choices[0].message.content == server.gem.chat(CHAT, max_new_tokens=6)
