"""Training's before/after is ``gemlm eval``'s suite on the model in memory: the same numbers."""

from __future__ import annotations

import json

import pytest
import yaml

from gemlm.evaluation.loglik import LoglikScorer
from gemlm.evaluation.run import evaluate, evaluate_loaded
from gemlm.model import GEMModel
from gemlm.training.run import train

from ..evaluation.conftest import SPECS, make_data
from .test_trainer import corpus, tiny_config  # noqa: F401  (corpus is a fixture)


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("suite")
    data = make_data(root / "data")
    (root / "sts.yaml").write_text(yaml.safe_dump(SPECS["sts"]))
    (root / "cls.yaml").write_text(yaml.safe_dump(SPECS["classification"]))
    path = root / "suite.yaml"
    generation = {
        "perplexity": {"source": "wiki", "eval_rows": 3, "seed": 0, "max_tokens": 32},
        "arc_easy": {"file": "arc/test.jsonl", "n": 3, "seed": 0},
    }
    spec = {"name": "tiny", "embedding": ["sts.yaml", "cls.yaml"], "generation": generation}
    path.write_text(yaml.safe_dump(spec))
    return path, data


def test_in_memory_results_equal_gemlm_eval(suite, tiny_llama_dir, tmp_path) -> None:
    path, data = suite
    gem = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    got = evaluate_loaded(gem, path, data, log=lambda m: None)
    want = evaluate(
        [f"m=gem:{tiny_llama_dir}"], path, tmp_path / "r.md", data, dtype="float32", log=print
    )["results"]["m"]
    assert set(got) == set(want) == {"TinySTS", "TinyCls", "Wiki ppl", "ARC-Easy"}
    for task, r in want.items():
        assert got[task]["main"] == pytest.approx(r["main"], rel=1e-6), task


def test_perplexity_texts_replace_the_suites(suite, tiny_llama_dir) -> None:
    path, data = suite
    gem = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    texts = ["the cat sat on the mat", "stocks fell sharply today", "paris", "never scored"]
    got = evaluate_loaded(gem, path, data, perplexity_texts=texts, log=lambda m: None)
    scorer = LoglikScorer(gem.model, gem.tokenizer, exclude_ids=gem.special_ids)
    want = scorer.perplexity(texts[:3], 32)  # capped at the suite's 3 paragraphs
    assert got["Wiki ppl"]["main"] == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("scope", ["all", "special_only"])
def test_training_reports_the_suite_before_and_after(
    suite,
    tiny_llama_dir,
    corpus,  # noqa: F811
    tmp_path,
    scope,
):
    path, data = suite
    cfg = tiny_config(
        tiny_llama_dir,
        corpus,
        tmp_path / "run",
        quick_eval=True,
        eval_suite=str(path),
        data_dir=str(data),
        adapter_scope=scope,
        sample_prompt="hi",
    )
    summary = train(cfg)
    before, after = summary["before"], summary["after"]
    tasks = {"TinySTS", "TinyCls", "Wiki ppl", "ARC-Easy"}
    assert tasks <= set(before) and tasks <= set(after)
    assert isinstance(after["sample"], str) and after["seconds"] >= 0
    assert json.loads((tmp_path / "run/before.json").read_text()) == before
    if scope == "special_only":  # generation is the base model's: carried over, not re-measured
        assert after["Wiki ppl"] == before["Wiki ppl"] and after["ARC-Easy"] == before["ARC-Easy"]
