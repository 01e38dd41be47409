"""benchmarks.template_cost: an arm's report-suite row and mean, read from pair_ablation's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.template_cost import quality


def test_quality_reads_an_arms_row_and_adds_its_mean(tmp_path: Path) -> None:
    row = {"overrides": [], "train_seconds": 9.0, "STSBenchmark": 76.0, "Banking77": 68.0}
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"arms": {"plain256": row}}))
    assert quality(path, "plain256") == {"STSBenchmark": 76.0, "Banking77": 68.0, "mean": 72.0}
    with pytest.raises(KeyError):
        quality(path, "batch256")
