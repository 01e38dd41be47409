"""benchmarks.model_cost: an arm's report-suite row and mean from pair_ablation's JSON, and encode
speed of several models side by side (template_cost uses both)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.model_cost import encode_speed, quality
from gemlm.model import GEMModel


def test_quality_reads_an_arms_row_and_adds_its_mean(tmp_path: Path) -> None:
    row = {"overrides": [], "train_seconds": 9.0, "STSBenchmark": 76.0, "Banking77": 68.0}
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"arms": {"plain256": row}}))
    assert quality(path, "plain256") == {"STSBenchmark": 76.0, "Banking77": 68.0, "mean": 72.0}
    with pytest.raises(KeyError):
        quality(path, "batch256")


def test_encode_speed_counts_each_models_own_tokens_against_the_first(tiny_dir) -> None:
    plain = GEMModel.from_pretrained(tiny_dir, dtype="float32")
    wrapped = GEMModel.from_pretrained(tiny_dir, dtype="float32")
    wrapped.config.readout_suffix = " means in one word:"  # more tokens for every text
    texts = ["a cat", "the dog sat on the mat", "hi"]
    speed = encode_speed({"plain": plain, "wrapped": wrapped}, {"s": texts}, rounds=1)["s"]
    assert speed["texts"] == 3
    assert speed["plain"]["time_vs_plain"] == 1.0
    assert speed["wrapped"]["time_vs_plain"] > 0
    want = {k: sum(map(len, m.tokenize_for_embedding(texts)[0])) / 3 for k, m in
            (("plain", plain), ("wrapped", wrapped))}  # fmt: skip
    assert speed["wrapped"]["tokens_per_text"] == round(want["wrapped"], 1)
    assert speed["wrapped"]["tokens_per_text"] > speed["plain"]["tokens_per_text"]
    for k in ("plain", "wrapped"):  # tokens/s over texts/s: that model's own tokens per text
        rate = speed[k]["tokens_per_s"] / speed[k]["texts_per_s"]
        assert rate == pytest.approx(want[k], rel=1e-2)  # rates are rounded
