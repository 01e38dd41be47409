from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gemlm.rag import prompting, reuse
from gemlm.rag.ask import QuestionTooLong, RagEngine
from gemlm.rag.indexing import index_paths
from gemlm.rag.store import RagStore

Q = "what is the capital of france"


@pytest.fixture
def store(tiny_gem, docs: Path, tmp_path: Path):
    with RagStore(tmp_path / "q") as st:
        index_paths(tiny_gem, st, "c", [docs], model_id="tiny", chunk_tokens=16, overlap=2)
        yield st


def test_ask_returns_numbered_sources_and_cites_them_in_the_prompt(tiny_gem, store) -> None:
    engine = RagEngine(tiny_gem, store, "c", model_id="tiny", top_k=3, reuse=True)
    ans = engine.ask(Q, max_new_tokens=4)
    assert len(ans.sources) >= 2  # the tiny 256-token window may not hold all 3
    assert [s.rank for s in ans.sources] == list(range(1, len(ans.sources) + 1))
    scores = [s.score for s in ans.sources]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    assert all(s.text and s.source for s in ans.sources)
    assert 1 <= ans.completion_tokens <= 4 and ans.reused_tokens > 0
    ids, kept = engine.prompt_ids(Q, ans.sources, 4)
    prompt = tiny_gem.tokenizer.decode(ids)
    assert "Cite the sources" in prompt
    for s in kept:
        assert f"[{s.rank}] " in prompt and s.text in prompt
    assert set(ans.timings) == {"embed", "retrieve", "generate", "total"}


def test_reuse_embedding_equals_encode(tiny_gem, store) -> None:
    engine = RagEngine(tiny_gem, store, "c", model_id="tiny", reuse=True)
    vec, fwd = engine.embed_question(Q)
    ref = tiny_gem.encode(Q, prompt=prompting.chat_header(tiny_gem))
    np.testing.assert_allclose(vec, ref, atol=1e-6)
    assert fwd is not None and fwd.cache.get_seq_length() == len(fwd.text_ids) + 1


def test_reuse_gives_the_same_greedy_answer(tiny_gem, store) -> None:
    engine = RagEngine(tiny_gem, store, "c", model_id="tiny", top_k=2, reuse=True)
    _, fwd = engine.embed_question(Q)
    sources = engine.retrieve(Q)
    ids, _ = engine.prompt_ids(Q, sources, 12)
    cache, reused = reuse.prepare_cache(fwd, ids)
    assert reused == len(fwd.text_ids) and cache.get_seq_length() == reused
    with_reuse = tiny_gem.complete(ids, max_new_tokens=12, cache=cache).token_ids
    plain = tiny_gem.complete(ids, max_new_tokens=12).token_ids
    assert with_reuse == plain and len(plain) > 0
    logits_plain = tiny_gem.model(torch.tensor([ids])).logits[0, -1]
    _, fwd = engine.embed_question(Q)
    cache, reused = reuse.prepare_cache(fwd, ids)
    rest = torch.tensor([ids[reused:]])
    logits_reuse = tiny_gem.model(rest, cache=cache).logits[0, -1]
    torch.testing.assert_close(logits_reuse, logits_plain, atol=1e-5, rtol=1e-5)


def test_no_reuse_path_and_stream(tiny_gem, store) -> None:
    plain = RagEngine(tiny_gem, store, "c", model_id="tiny", top_k=2)  # reuse is opt-in
    ans = plain.ask(Q, max_new_tokens=5)
    assert ans.reused_tokens == 0 and len(ans.sources) == 2
    engine = RagEngine(tiny_gem, store, "c", model_id="tiny", top_k=2, reuse=True)
    stream = engine.ask_stream(Q, max_new_tokens=5)
    assert len(stream.sources) == 2  # known before any token
    text = "".join(stream)
    res = stream.result()
    assert res.answer == text.strip() and res.answer == engine.ask(Q, max_new_tokens=5).answer


def test_too_long_question_and_context(tiny_gem, store) -> None:
    engine = RagEngine(tiny_gem, store, "c", model_id="tiny")
    with pytest.raises(QuestionTooLong, match="embedding window"):
        engine.ask("the cat sat " * 200, max_new_tokens=2)
    reusing = RagEngine(tiny_gem, store, "c", model_id="tiny", reuse=True)
    with pytest.raises(QuestionTooLong, match="embedding window holds"):
        reusing.ask("the cat sat " * 200, max_new_tokens=2)
    with pytest.raises(QuestionTooLong, match="context window"):
        engine.ask(Q, max_new_tokens=250)
    ids, kept = engine.prompt_ids(Q, engine.retrieve(Q), 150)  # drops sources to fit
    assert len(ids) + 150 <= engine.context_window and len(kept) < engine.top_k
    with pytest.raises(ValueError, match="empty"):
        engine.ask("  ")
