"""benchmarks.pair_ablation's table grown over several runs: kept rows carry the command and the
training dtype that measured them, and the markdown names each command."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import pair_ablation

SCORES = {"STSBenchmark": 75.9, "Banking77": 70.3, "Emotion": 38.4}


def test_kept_rows_are_stamped_with_the_command_that_measured_them(tmp_path: Path) -> None:
    out = tmp_path / "distill.json"
    assert pair_ablation.kept_rows(out) == {}  # nothing earlier: nothing kept
    old = {"overrides": ["distill_teacher=minilm"], "train_seconds": 60.0, **SCORES}
    out.write_text(
        json.dumps({"command": "old cmd", "arms": {"a": old}, "machine": {"auto_dtype": "float32"}})
    )
    kept = pair_ablation.kept_rows(out)
    assert kept["a"]["command"] == "old cmd" and kept["a"]["dtype"] == "float32"
    assert kept["a"]["STSBenchmark"] == 75.9

    new = {**old, "overrides": ["x=1"], "command": "new cmd", "dtype": "bfloat16"}
    pair_ablation.write_table(out, "r.yaml", {**kept, "b": new}, "new cmd", "T")
    md = out.with_suffix(".md").read_text()
    assert "`new cmd`" in md and "a: `old cmd`" in md and "b: `" not in md
    lines = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ")}
    assert lines["| a (distilled from minilm: not self-supervised)"].endswith("| 1.0 | float32 |")
    assert lines["| b"].endswith("| bfloat16 |")
    data = json.loads(out.read_text())
    assert set(data["arms"]) == {"a", "b"} and data["arms"]["a"]["command"] == "old cmd"
