"""The markdown report: one row per task, one column per model, specs as given."""

from __future__ import annotations

from gemlm.evaluation.report import markdown


def _payload() -> dict:
    meta = {
        "suite": "tiny",
        "command": "gemlm eval ...",
        "dtype": "float32",
        "torch_threads": 2,
        "data_dir": "data",
        "seconds_total": 60.0,
        "subsets": {"TinySTS": "test 3"},
        "models": [
            {"label": "full", "kind": "gem", "target": "runs/m", "dims": None},
            {"label": "d64", "kind": "gem", "target": "runs/m", "dims": 64},
        ],
    }
    row = {"metric": "cosine_spearman", "main": 50.0, "seconds": 1.0}
    return {"meta": meta, "results": {"full": {"TinySTS": row}, "d64": {"TinySTS": dict(row)}}}


def test_models_are_listed_with_their_truncation():
    md = markdown(_payload())
    assert "| TinySTS | cosine_spearman | 50.00 | 50.00 |" in md
    assert "- **full**: `gem:runs/m`\n" in md
    assert "- **d64**: `gem:runs/m@64`\n" in md
