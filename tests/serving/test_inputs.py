"""Embedding inputs the server must not embed silently: over the window, or another tokenizer's
token ids. Each refusal is a 400 that names the input and says what to do."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from gemlm.model import GEMModel
from gemlm.serving import ServeLimits, create_app, serve_in_thread

from .conftest import API_KEY, MODEL

WINDOW = 32
LONG = "the cat sat on the mat and the dog sat on the rug " * 8  # > 32 tokens
SHORT = "paris is the capital of france"


@pytest.fixture(scope="module")
def small(tiny_llama_dir) -> GEMModel:
    """The tiny Llama with a 32-token embedding window."""
    return GEMModel.from_pretrained(str(tiny_llama_dir), dtype="float32", max_length=WINDOW)


@pytest.fixture(scope="module")
def urls(small: GEMModel) -> Iterator[dict[str, str]]:
    """Three servers of the same model: default policies, --truncate, --accept-token-ids."""
    apps = {
        "default": ServeLimits(),
        "truncate": ServeLimits(truncate=True),
        "ids": ServeLimits(accept_token_ids=True),
    }
    with (
        serve_in_thread(create_app(small, model_name=MODEL, limits=apps["default"])) as a,
        serve_in_thread(create_app(small, model_name=MODEL, limits=apps["truncate"])) as b,
        serve_in_thread(create_app(small, model_name=MODEL, limits=apps["ids"])) as c,
    ):
        yield {"default": a + "/v1", "truncate": b + "/v1", "ids": c + "/v1"}


def embed(url: str, **body) -> httpx.Response:
    return httpx.post(url + "/embeddings", json={"model": MODEL, **body}, timeout=30)


def error(r: httpx.Response, code: str) -> dict[str, str]:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == code, err
    assert err["type"] == "invalid_request_error"
    return err


def test_an_input_over_the_window_is_a_400_naming_it(urls, small) -> None:
    tokens = small.embedding_lengths([LONG])[0]
    assert tokens > WINDOW
    err = error(embed(urls["default"], input=[SHORT, LONG]), "context_length_exceeded")
    assert err["param"] == "input[1]"
    assert f"input[1] has {tokens} tokens" in err["message"]
    assert f"window is {WINDOW} tokens" in err["message"] and '"truncate": true' in err["message"]
    one = error(embed(urls["default"], input=LONG), "context_length_exceeded")
    assert one["param"] == "input[0]"
    ok = embed(urls["default"], input=[SHORT, SHORT])  # fits: embedded as before
    assert ok.status_code == 200


def test_truncate_by_request_or_by_server(urls, small) -> None:
    with pytest.warns(UserWarning, match="truncated"):
        want = small.encode([SHORT, LONG])
    for url, body in (
        (urls["default"], {"truncate": True}),
        (urls["truncate"], {}),
        (urls["truncate"], {"truncate": None}),
    ):
        r = embed(url, input=[SHORT, LONG], encoding_format="float", **body)
        assert r.status_code == 200, r.text
        got = np.array([d["embedding"] for d in r.json()["data"]])
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert r.json()["usage"]["prompt_tokens"] == small.embedding_lengths([SHORT])[0] + WINDOW
    error(embed(urls["truncate"], input=LONG, truncate=False), "context_length_exceeded")


def test_embedding_lengths_are_what_the_engine_embeds(small) -> None:
    ids, cut = small.tokenize_for_embedding([SHORT, "", [5, 6, 7]])
    assert cut == 0 and small.embedding_lengths([SHORT, "", [5, 6, 7]]) == [len(x) for x in ids]


def test_one_refused_input_does_not_fail_the_micro_batch(urls) -> None:
    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=urls["default"], timeout=30) as client:
            return await asyncio.gather(
                client.post("/embeddings", json={"input": LONG}),
                client.post("/embeddings", json={"input": [SHORT] * 3}),
            )

    bad, good = asyncio.run(both())
    assert bad.status_code == 400 and good.status_code == 200
    assert len(good.json()["data"]) == 3


def test_token_ids_are_refused_by_default_with_the_langchain_fix(urls, small) -> None:
    ids = small.tokenizer(SHORT)["input_ids"]
    err = error(embed(urls["default"], input=[ids]), "token_ids_not_accepted")
    assert err["param"] == "input[0]"
    assert "check_embedding_ctx_length=False" in err["message"]
    assert "--accept-token-ids" in err["message"]
    client = openai.OpenAI(base_url=urls["default"], api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError, match="check_embedding_ctx_length=False"):
        client.embeddings.create(model=MODEL, input=ids)


def test_accepted_token_ids_of_this_tokenizer_equal_the_text(urls, small) -> None:
    texts = [SHORT, "naïve café, 20 °C"]
    ids = [small.tokenizer(t)["input_ids"] for t in texts]
    client = openai.OpenAI(base_url=urls["ids"], api_key=API_KEY, max_retries=0)
    many = client.embeddings.create(model=MODEL, input=ids)
    one = client.embeddings.create(model=MODEL, input=ids[0])
    want = small.encode(texts)
    np.testing.assert_allclose([d.embedding for d in many.data], want, atol=1e-5)
    np.testing.assert_allclose(one.data[0].embedding, want[0], atol=1e-5)


def foreign_tokenizer() -> Tokenizer:
    """Another byte-level BPE (other corpus, other merges): its ids are valid ids here too."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = ["capital cities of european countries and their rivers"] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=280, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(corpus, trainer)
    return tok


def test_ids_of_another_tokenizer_are_refused(urls, small) -> None:
    foreign = foreign_tokenizer().encode(SHORT).ids
    assert foreign != small.tokenizer(SHORT)["input_ids"] and max(foreign) < len(small.tokenizer)
    err = error(
        embed(urls["ids"], input=[small.tokenizer(SHORT)["input_ids"], foreign]),
        "foreign_token_ids",
    )
    assert err["param"] == "input[1]" and "another tokenizer" in err["message"]
    assert "check_embedding_ctx_length=False" in err["message"]
    err = error(embed(urls["ids"], input=[[5, 10**6]]), "invalid_value")
    assert "outside this model's vocabulary" in err["message"]
    err = error(embed(urls["ids"], input=[[5, small.special_ids[0]]]), "invalid_value")
    assert "GEM token" in err["message"]
    too_long = small.tokenizer(LONG)["input_ids"]
    error(embed(urls["ids"], input=[too_long]), "context_length_exceeded")
    assert embed(urls["ids"], input=[too_long], truncate=True).status_code == 200
