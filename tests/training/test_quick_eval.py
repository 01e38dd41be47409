from __future__ import annotations

import csv
import math

import pytest
import torch

from gemlm.model import GEMModel
from gemlm.training.quick_eval import perplexity, quick_eval


@pytest.fixture()
def data(tmp_path):
    (tmp_path / "stsbenchmark").mkdir()
    (tmp_path / "banking77").mkdir()
    pairs = [
        ("the cat sat", "a cat sat", 4.5),
        ("the dog ran", "stocks fell", 0.5),
        ("paris is nice", "paris is lovely", 4.0),
        ("rain tomorrow", "the lazy fox", 1.0),
    ]
    with open(tmp_path / "stsbenchmark/stsb-en-test.csv", "w", newline="") as f:
        csv.writer(f).writerows(pairs)
    rows = [
        ("the cat sat on the mat", "pets"),
        ("a dog slept on the rug", "pets"),
        ("stocks fell sharply", "money"),
        ("bonds rose today", "money"),
    ] * 3
    for name in ("train.csv", "test.csv"):
        with open(tmp_path / "banking77" / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "category"])
            w.writerows(rows)
    return tmp_path


def test_quick_eval_reports_every_number(tiny_llama_dir, data) -> None:
    gem = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    out = quick_eval(
        gem, data, ["the cat sat on the mat", "paris is the capital"], sample_prompt="hi"
    )
    assert -100 <= out["stsb_spearman"] <= 100
    assert 0 <= out["banking77_accuracy"] <= 100
    assert out["wiki_perplexity"] > 1 and isinstance(out["sample"], str)


def test_perplexity_matches_the_models_own_loss(tiny_llama_dir) -> None:
    gem = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    texts = ["the cat sat on the mat", "a quick brown fox jumps over the lazy dog and more"]
    ids = [gem.tokenizer(t, return_tensors="pt")["input_ids"] for t in texts]
    with torch.no_grad():
        losses = [gem.model(input_ids=x, labels=x).loss.item() * (x.shape[1] - 1) for x in ids]
    expected = math.exp(sum(losses) / sum(x.shape[1] - 1 for x in ids))
    assert perplexity(gem, texts, batch_size=2) == pytest.approx(expected, rel=1e-4)
