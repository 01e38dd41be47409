"""The generation engine: one Sampling, one loop for plain, streamed, cancelled and cached runs;
unset settings take the model's generation defaults; OpenAI / vLLM penalties."""

from __future__ import annotations

import json
import threading
import warnings

import pytest
import torch
from transformers import (
    DynamicCache,
    GenerationConfig,
    LogitsProcessorList,
    SuppressTokensLogitsProcessor,
)

from gemlm.generation import Completion, _OpenAIPenalties, cut_at_stop
from gemlm.loading import alias_generation_defaults
from gemlm.model import GEMModel
from gemlm.sampling import GenerationDefaults, Sampling


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


# ---------------------------------------------------------------- defaults and penalties
def test_sampling_validates_penalties_and_top_k() -> None:
    for bad in (
        {"frequency_penalty": 2.5},
        {"presence_penalty": -2.1},
        {"repetition_penalty": 0},
        {"top_k": -1},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Sampling(**bad)
    s = Sampling(frequency_penalty=-2, presence_penalty=2, repetition_penalty=1.5, top_k=0)
    assert s.resolved(GenerationDefaults(temperature=0.3)).temperature == 0.3
    assert s.resolved(GenerationDefaults(repetition_penalty=9.0)).repetition_penalty == 1.5


def test_generation_defaults_are_read_as_vllm_reads_them() -> None:
    assert GenerationDefaults.of(GenerationConfig()) == GenerationDefaults()
    assert GenerationDefaults().temperature == 0.0  # nothing stated: greedy, as transformers
    stated = GenerationDefaults.of(GenerationConfig(do_sample=True, temperature=0.2, top_p=0.9))
    assert (stated.temperature, stated.top_p, stated.top_k) == (0.2, 0.9, 0)
    assert stated.source == "generation_config"
    assert GenerationDefaults.of(GenerationConfig(do_sample=True)).temperature == 1.0
    greedy = GenerationDefaults.of(GenerationConfig(do_sample=False, repetition_penalty=1.2))
    assert greedy.temperature == 0.0 and greedy.repetition_penalty == 1.2


def generate_kwargs_of(gem: GEMModel, monkeypatch, **settings) -> dict:
    """The keywords ``model.generate`` receives for ``gem.complete(**settings)``."""
    seen: dict = {}
    real = gem.model.generate

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(gem.model, "generate", spy)
    gem.complete("the cat", max_new_tokens=3, **settings)
    monkeypatch.setattr(gem.model, "generate", real)
    return seen


def test_unset_sampling_takes_the_models_generation_config(gem: GEMModel, monkeypatch) -> None:
    assert gem.generation_defaults["temperature"] == 0.0  # the tiny model states none
    assert generate_kwargs_of(gem, monkeypatch)["do_sample"] is False
    config = gem.model.generation_config
    for key, value in dict(do_sample=True, temperature=0.7, top_p=0.8, top_k=5).items():
        monkeypatch.setattr(config, key, value)
    assert gem.generation_defaults == {
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 5,
        "repetition_penalty": 1.0,
        "source": "generation_config",
    }
    kw = generate_kwargs_of(gem, monkeypatch)
    assert kw["do_sample"] is True
    assert (kw["temperature"], kw["top_p"], kw["top_k"]) == (0.7, 0.8, 5)
    kw = generate_kwargs_of(gem, monkeypatch, top_p=0.5, seed=1)  # one field given, the rest not
    assert (kw["temperature"], kw["top_p"], kw["top_k"]) == (0.7, 0.5, 5)
    assert generate_kwargs_of(gem, monkeypatch, temperature=0)["do_sample"] is False


def test_greedy_without_penalties_is_token_identical_to_plain_generate(
    gem: GEMModel, monkeypatch
) -> None:
    """No penalty asked: the engine's greedy ids are the ones ``model.generate`` gives alone,
    even when the model's generation_config asks for sampling and a repetition penalty."""
    ids = gem.prompt_ids("the cat sat on")
    x = torch.tensor([ids])
    ref = gem.model.generate(
        x,
        attention_mask=torch.ones_like(x),
        max_new_tokens=16,
        do_sample=False,
        pad_token_id=gem.pad_id,
        logits_processor=LogitsProcessorList([SuppressTokensLogitsProcessor(gem.special_ids)]),
    )[0, len(ids) :].tolist()
    assert gem.complete(ids, max_new_tokens=16).token_ids == ref  # the tiny model's default
    config = gem.model.generation_config
    for key, value in dict(do_sample=True, temperature=0.7, repetition_penalty=3.0).items():
        monkeypatch.setattr(config, key, value)
    explicit = Sampling(
        max_new_tokens=16,
        temperature=0,
        repetition_penalty=1.0,
        frequency_penalty=0.0,
        presence_penalty=0.0,
    )
    assert gem.complete(ids, explicit).token_ids == ref


def test_openai_penalties_count_generated_tokens_only() -> None:
    penalties = _OpenAIPenalties(prompt_len=2, frequency=0.5, presence=0.25)
    ids = torch.tensor([[9, 3, 3, 5, 3]])  # generated: 3, 5, 3
    out = penalties(ids, torch.zeros(1, 10))
    want = torch.zeros(1, 10)
    want[0, 3] = -(0.5 * 2 + 0.25)
    want[0, 5] = -(0.5 * 1 + 0.25)
    torch.testing.assert_close(out, want)  # 9 only in the prompt: untouched
    same = torch.randn(1, 10)
    assert torch.equal(_OpenAIPenalties(5, 2.0, 2.0)(ids, same), same)  # nothing generated yet


def test_penalties_break_a_greedy_loop(gem: GEMModel) -> None:
    def worst_repeat(ids: list[int]) -> int:
        return max(ids.count(t) for t in set(ids))

    plain = gem.complete("the cat", max_new_tokens=12, temperature=0).token_ids
    assert worst_repeat(plain) > 4, "the tiny model's greedy output is expected to loop"
    for penalty in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0}):
        out = gem.complete("the cat", max_new_tokens=12, temperature=0, **penalty).token_ids
        assert worst_repeat(out) < worst_repeat(plain), penalty
    out = gem.complete("the cat", max_new_tokens=12, temperature=0, repetition_penalty=3.0)
    assert out.token_ids != plain


def test_generation_with_a_cache_warns_nothing(gem: GEMModel) -> None:
    """The current transformers API (``cache=``): no deprecation warning from gemlm's calls."""
    ids = gem.prompt_ids("the cat sat on the mat")
    cache = DynamicCache(config=gem.model.config)
    with torch.no_grad():
        gem.model(input_ids=torch.tensor([ids[:-2]]), cache=cache, use_cache=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with_cache = gem.complete(ids, max_new_tokens=6, temperature=0, cache=cache)
        list(gem.stream("the cat", max_new_tokens=3, temperature=0.5, seed=0))
    assert [str(w.message) for w in caught] == []
    assert with_cache.token_ids == gem.complete(ids, max_new_tokens=6, temperature=0).token_ids


def test_alias_defaults_are_given_saved_and_inherited(tiny_llama_dir, tmp_path) -> None:
    gem = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    assert gem.generation_defaults["source"].startswith("greedy")
    alias_generation_defaults(gem.model, str(tiny_llama_dir), "SmolLM2-135M-Instruct")
    want = {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0}
    assert gem.generation_defaults == want | {"source": "generation_config"}  # stated: greedy
    folder = gem.save_pretrained(tmp_path / "trained")  # a model trained from the alias
    saved = json.loads((folder / "generation_config.json").read_text())
    assert saved["do_sample"] is False
    again = GEMModel.from_pretrained(folder, dtype="float32")
    assert again.generation_defaults == gem.generation_defaults

    gemma = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    alias_generation_defaults(gemma.model, "gemma3-270m")
    assert gemma.generation_defaults == {
        "temperature": 1.0,
        "top_p": 0.95,
        "top_k": 64,
        "repetition_penalty": 1.0,
        "source": "generation_config",
    }

    own = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    own.model.generation_config.update(do_sample=True, temperature=0.6)
    alias_generation_defaults(own.model, "smollm2-135m-instruct")  # the model's own win
    assert own.generation_defaults["temperature"] == 0.6

    named = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    named.config.base_model = "smollm2-135m-instruct"  # a folder that names the alias as base
    named.model.generation_config.do_sample = None  # and whose generation_config states nothing
    folder = named.save_pretrained(tmp_path / "named")
    assert GEMModel.from_pretrained(folder, dtype="float32").generation_defaults == (
        want | {"source": "generation_config"}
    )


def test_between_tokens_is_called_after_every_generated_token(gem: GEMModel) -> None:
    calls: list[int] = []
    plain = gem.complete("the cat", max_new_tokens=6, temperature=0.0)
    gem.generator.between_tokens.append(lambda: calls.append(1))
    try:
        hooked = gem.complete("the cat", max_new_tokens=6, temperature=0.0)
    finally:
        gem.generator.between_tokens.clear()
    assert hooked.token_ids == plain.token_ids  # the hook never changes what is generated
    assert len(calls) == hooked.completion_tokens
