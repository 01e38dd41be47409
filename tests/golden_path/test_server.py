"""``gemlm serve --rag-collection`` per kind, as a real uvicorn process: the models card, the
``openai`` client's embeddings and chat, ``/v1/rag``, LangChain and LlamaIndex, then SIGTERM
(last: it stops the servers the package shares)."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from .conftest import TEXTS, Served

CHAT = [{"role": "user", "content": "the weather is sunny"}]
NEW_TOKENS = 8


def openai_client(s: Served) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=60)


# ---------------------------------------------------------------------------- the server
def test_models_card_reports_the_front(served, gems, kind) -> None:
    gem = gems[kind]
    card = httpx.get(served.url + "/v1/models", timeout=10).json()["data"]
    assert [c["id"] for c in card] == [served.name]
    assert card[0]["max_model_len"] == gem.context_length
    assert card[0]["embedding_dimension"] == gem.embedding_dim


def test_openai_client_embeddings_equal_encode(served, gems, kind) -> None:
    client = openai_client(served)
    by_default = client.embeddings.create(model=served.name, input=TEXTS)  # base64 on the wire
    as_float = client.embeddings.create(model=served.name, input=TEXTS, encoding_format="float")
    got = np.array([d.embedding for d in by_default.data], dtype=np.float32)
    want = gems[kind].encode(TEXTS)
    assert got.shape == (len(TEXTS), gems[kind].embedding_dim)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(np.array([d.embedding for d in as_float.data], np.float32), got)
    if kind != "plain":  # the served model is the trained one, not its base
        assert not np.allclose(want, gems["plain"].encode(TEXTS), atol=1e-3)


def test_greedy_chat_is_the_models_and_gated_chat_is_the_bases(served, gems, kind) -> None:
    client = openai_client(served)
    reply = client.chat.completions.create(
        model=served.name, messages=CHAT, temperature=0, max_tokens=NEW_TOKENS
    )
    mine = gems[kind].complete(CHAT, chat=True, max_new_tokens=NEW_TOKENS, temperature=0.0)
    assert reply.choices[0].message.content == mine.text
    assert reply.usage.completion_tokens == mine.completion_tokens
    assert reply.usage.prompt_tokens == mine.prompt_tokens
    pieces = client.chat.completions.create(
        model=served.name, messages=CHAT, temperature=0, max_tokens=NEW_TOKENS, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices) == mine.text
    if kind == "special_only":  # the gate leaves generation to the base model, bit for bit
        base = gems["plain"].complete(CHAT, chat=True, max_new_tokens=NEW_TOKENS, temperature=0.0)
        assert mine.token_ids == base.token_ids and mine.text == base.text


def test_rag_answers_from_the_indexed_file(served, note) -> None:
    r = httpx.post(
        served.url + "/v1/rag",
        json={"question": "what is the capital of france?", "max_tokens": 8, "temperature": 0.0},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["answer"], str) and body["usage"]["completion_tokens"] >= 1
    assert body["sources"] and {Path(s["source"]).name for s in body["sources"]} == {note.name}
    assert "capital of france" in body["sources"][0]["text"]


# ---------------------------------------------------------------------------- real clients
def test_langchain_embeddings_send_text_and_equal_encode(served, gems, kind) -> None:
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(
        model=served.name,
        base_url=served.url + "/v1",
        api_key="unused",
        check_embedding_ctx_length=False,  # send text: no tiktoken, no foreign token ids
        max_retries=0,
    )
    gem = gems[kind]
    np.testing.assert_allclose(np.array(emb.embed_documents(TEXTS)), gem.encode(TEXTS), atol=1e-5)
    np.testing.assert_allclose(emb.embed_query(TEXTS[1]), gem.encode(TEXTS[1]), atol=1e-5)


def test_langchain_chat_invoke_and_stream(served, gems, kind) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        model=served.name,
        base_url=served.url + "/v1",
        api_key="unused",
        temperature=0,
        max_tokens=NEW_TOKENS,
        max_retries=0,
    )
    want = gems[kind].complete(CHAT, chat=True, max_new_tokens=NEW_TOKENS, temperature=0.0).text
    assert chat.invoke(CHAT[0]["content"]).content == want
    assert "".join(c.content for c in chat.stream(CHAT[0]["content"])) == want


def test_llama_index_llm_and_embedding(served, gems, kind) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding
    from llama_index.llms.openai_like import OpenAILike

    gem = gems[kind]
    common = dict(model=served.name, api_base=served.url + "/v1", api_key="unused")
    common |= dict(temperature=0.0, max_tokens=NEW_TOKENS, max_retries=0, context_window=256)
    prompt = "the cat sat on"
    completion = OpenAILike(**common, is_chat_model=False).complete(prompt)
    assert completion.text == gem.complete(prompt, max_new_tokens=NEW_TOKENS, temperature=0.0).text
    reply = OpenAILike(**common, is_chat_model=True).chat([ChatMessage(**CHAT[0])])
    want = gem.complete(CHAT, chat=True, max_new_tokens=NEW_TOKENS, temperature=0.0).text
    assert reply.message.content == want

    emb = OpenAILikeEmbedding(
        model_name=served.name, api_base=served.url + "/v1", api_key="unused", max_retries=0
    )
    np.testing.assert_allclose(
        np.array(emb.get_text_embedding_batch(TEXTS)), gem.encode(TEXTS), atol=1e-5
    )
    np.testing.assert_allclose(emb.get_query_embedding(TEXTS[0]), gem.encode(TEXTS[0]), atol=1e-5)


# ---------------------------------------------------------------------------- the end
def test_sigterm_stops_the_server(served) -> None:
    """Last in the module: uvicorn shuts down gracefully and the port is closed."""
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in served.output()
    assert "FutureWarning" not in served.output()  # loading, embedding, chat, RAG: current APIs
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", served.port)) != 0
