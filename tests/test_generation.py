"""The generation engine: one Sampling, one loop for plain, streamed, cancelled and cached runs."""

from __future__ import annotations

import threading

import pytest

from gemlm.generation import Completion, Sampling, cut_at_stop
from gemlm.model import GEMModel


@pytest.fixture(scope="module")
def gem(tiny_llama_dir) -> GEMModel:
    return GEMModel.from_pretrained(tiny_llama_dir, dtype="float32", num_special_tokens=2)


def test_sampling_normalises_and_validates() -> None:
    assert Sampling(stop="x").stop == ("x",)
    assert Sampling(stop=["a", "", "b"]).stop == ("a", "b")
    assert Sampling(stop=None).stop == ()
    assert Sampling(seed=None).for_choice(3).seed is None
    assert Sampling(seed=2**64 - 1).for_choice(1).seed == 0
    for bad in ({"max_new_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}):
        with pytest.raises(ValueError):
            Sampling(**bad)


def test_cut_at_stop_takes_the_earliest_stop() -> None:
    assert cut_at_stop("abcXdefY", ["Y", "X"]) == ("abc", True)
    assert cut_at_stop("abc", []) == ("abc", False)


def test_finish_reason_and_usage(gem: GEMModel) -> None:
    out = gem.complete("the cat", max_new_tokens=6)
    assert isinstance(out, Completion)
    assert out.prompt_tokens == len(gem.prompt_ids("the cat"))
    assert out.completion_tokens == len(out.token_ids) == 6 and out.finish_reason == "length"
    assert out.text == gem.tokenizer.decode(out.token_ids, skip_special_tokens=True)


def test_streamed_pieces_add_up_and_hold_back_stop_strings(gem: GEMModel) -> None:
    full = gem.complete("the cat", max_new_tokens=24)
    pieces: list[str] = []
    streamed = gem.complete("the cat", max_new_tokens=24, on_text=pieces.append)
    assert "".join(pieces) == streamed.text == full.text
    assert streamed.token_ids == full.token_ids
    if len(full.text) < 4:
        pytest.skip("the tiny model's continuation is too short to hold a stop string")
    stop = full.text[2:4]
    pieces = []
    cut = gem.complete("the cat", max_new_tokens=24, stop=stop, on_text=pieces.append)
    assert cut.finish_reason == "stop" and cut.text == full.text[: full.text.find(stop)]
    assert "".join(pieces) == cut.text and not any(stop in p for p in pieces)


def test_a_set_cancel_event_stops_at_the_first_token(gem: GEMModel) -> None:
    cancel = threading.Event()
    cancel.set()
    out = gem.complete("the cat", max_new_tokens=20, cancel=cancel)
    assert out.completion_tokens == 1 and out.finish_reason == "stop"


def test_stream_returns_the_completion_and_stops_when_left(gem: GEMModel) -> None:
    full = gem.complete("the cat", max_new_tokens=12)
    stream = gem.stream("the cat", max_new_tokens=12)
    pieces = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as end:
            result = end.value
            break
    assert result.token_ids == full.token_ids and "".join(pieces) == full.text
    left = gem.stream("the cat", max_new_tokens=200)
    next(left)
    left.close()  # cancels and joins the worker thread
    assert threading.active_count() < 50


def test_errors_in_generation_reach_the_consumer(gem: GEMModel, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(gem.model, "generate", boom)
    with pytest.raises(RuntimeError, match="boom"):
        list(gem.stream("the cat", max_new_tokens=4))


def test_seeded_sampling_reproduces(gem: GEMModel) -> None:
    s = Sampling(max_new_tokens=8, temperature=1.0, seed=3)
    assert gem.complete("the cat", s).token_ids == gem.complete("the cat", s).token_ids
    assert gem.complete("the cat", s, max_new_tokens=4).completion_tokens <= 4
