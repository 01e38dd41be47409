"""RAG answers: brief by default (a short budget, stop at a blank line), sources numbered [n]
in the prompt and the numbers the answer cites read back; answers from given passages."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gemlm.generation import Completion
from gemlm.rag import prompting
from gemlm.rag.ask import DEFAULT_ANSWER_TOKENS, RagEngine, Source
from gemlm.rag.indexing import index_paths
from gemlm.rag.store import RagStore
from gemlm.sampling import Sampling

Q = "what is the capital of france"


@pytest.fixture
def engine(tiny_gem, docs: Path, tmp_path: Path):
    with RagStore(tmp_path / "q") as st:
        index_paths(tiny_gem, st, "c", [docs], model_id="tiny", chunk_tokens=16, overlap=2)
        yield RagEngine(tiny_gem, st, "c", model_id="tiny", top_k=2)


def scripted(monkeypatch, gem, text: str) -> list[Sampling]:
    """``gem.complete`` and ``gem.stream`` answer ``text`` (cut at the stop strings, as the
    engine does) and record the Sampling they were given."""
    seen: list[Sampling] = []

    def complete(ids, sampling=None, **kwargs):
        seen.append(sampling)
        cut = min([text.find(s) for s in sampling.stop if s in text] or [len(text)])
        return Completion(text[:cut], [5] * 3, len(ids), 3, "stop")

    def stream(ids, sampling=None, **kwargs):
        done = complete(ids, sampling)
        yield from done.text.split(" ")[:1] + [" " + w for w in done.text.split(" ")[1:]]
        return done

    monkeypatch.setattr(gem, "complete", complete)
    monkeypatch.setattr(gem, "stream", stream)
    return seen


def test_the_default_answer_is_short_stops_and_samples_as_the_model(engine) -> None:
    s = engine.sampling()
    assert s.max_new_tokens == DEFAULT_ANSWER_TOKENS and s.stop == prompting.ANSWER_STOP
    assert "\n\n" in s.stop and s.temperature is None and s.top_p is None  # the model's
    s = engine.sampling(max_new_tokens=8, temperature=0.0, top_p=0.5, stop=(), seed=3)
    assert (s.max_new_tokens, s.temperature, s.top_p, s.stop, s.seed) == (8, 0.0, 0.5, (), 3)


def test_answer_stops_at_a_blank_line_and_lists_what_it_cites(
    engine, tiny_gem, monkeypatch
) -> None:
    seen = scripted(monkeypatch, tiny_gem, "Paris [1], see also [2] and [9].\n\nParis [1]. Paris")
    ans = engine.ask(Q, max_new_tokens=8)  # the tiny window holds 2 sources with 8 new tokens
    assert ans.answer == "Paris [1], see also [2] and [9]."  # stopped at the blank line
    assert ans.cited == [1, 2] and len(ans.sources) == 2  # [9] names no source
    assert seen[-1].stop == prompting.ANSWER_STOP and seen[-1].temperature is None
    assert ans.as_dict()["cited"] == [1, 2] and ans.finish_reason == "stop"
    stream = engine.ask_stream(Q, max_new_tokens=5)
    assert "".join(stream) == ans.answer and stream.result().cited == [1, 2]
    assert seen[-1].max_new_tokens == 5


def test_the_prompt_numbers_the_sources_and_asks_the_question_last(engine, tiny_gem) -> None:
    sources = engine.retrieve(Q)
    ids, kept = engine.prompt_ids(Q, sources, 8)
    prompt = tiny_gem.tokenizer.decode(ids)
    for s in kept:
        assert f"[{s.rank}] " in prompt and s.text in prompt
    assert prompt.index("Cite the sources") < prompt.rindex(f"Question: {Q}")
    assert prompt.rstrip().endswith("assistant")  # the question, then the answer's turn
    before = RagEngine(
        tiny_gem, engine.store, "c", model_id="tiny", repeat_question=False
    ).prompt_ids(Q, sources, 8)[0]
    assert "Question:" not in tiny_gem.tokenizer.decode(before)  # the layout before


def test_answer_from_given_passages_numbers_them_in_order(engine, tiny_gem) -> None:
    gold = Source(rank=7, score=1.0, text="paris is the capital of france.", source="gold")
    other = replace(gold, text="stocks fell sharply today.", source="other")
    ans = engine.answer(Q, [gold, other], max_new_tokens=6, temperature=0.0)
    assert [s.rank for s in ans.sources] == [1, 2] and ans.sources[0].text == gold.text
    assert 1 <= ans.completion_tokens <= 6 and ans.reused_tokens == 0
    same = engine.answer(Q, [gold, other], max_new_tokens=6, temperature=0.0)
    assert same.answer == ans.answer  # greedy: reproducible
    with pytest.raises(ValueError, match="empty"):
        engine.answer(" ", [gold])


def test_cited_numbers_and_stripping() -> None:
    assert prompting.cited_numbers("A [1][3], B [2, 3], C [0] and [4].", 3) == [1, 2, 3]
    assert prompting.cited_numbers("no citation", 3) == []
    assert prompting.strip_citations("Paris [1] is the capital [1, 2].") == "Paris is the capital."
