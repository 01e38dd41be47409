"""The markdown report: one row per task, one column per model, specs as given."""

from __future__ import annotations

from pathlib import Path

from gemlm.evaluation.display import shown_command, shown_data_dir, shown_path
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
    assert "\n- **TinySTS**: test 3\n" in md


def test_a_distilled_model_is_labelled_in_the_table_and_the_list():
    payload = _payload()
    payload["meta"]["models"][1]["distilled_from"] = "all-MiniLM-L6-v2"
    md = markdown(payload)
    assert "| task | metric | full | d64 (distilled from all-MiniLM-L6-v2) |" in md
    assert "- **d64**: `gem:runs/m@64`, distilled from all-MiniLM-L6-v2\n" in md
    assert "- **full**: `gem:runs/m`\n" in md


def test_paths_are_shown_relative():
    cwd, home = "/srv/repo", "/home/u"
    assert shown_path("/srv/repo/runs/m/model", cwd, home) == "runs/m/model"
    assert shown_path("/srv/shared/data", cwd, home) == "../shared/data"
    assert shown_path("/home/u/models/m", cwd, home) == "~/models/m"
    assert shown_path("smollm2-135m-instruct", cwd, home) == "smollm2-135m-instruct"
    command = (
        "python /srv/repo/benchmarks/x.py -m A=gem:/srv/repo/runs/a/model@64 "
        "--data-dir=/home/u/data --out '/srv/repo/o.md' --url http://host/a/b"
    )
    assert shown_command(command, cwd, home) == (
        "python benchmarks/x.py -m A=gem:runs/a/model@64 "
        "--data-dir=~/data --out 'o.md' --url http://host/a/b"
    )


def test_data_dir_is_shown_as_given(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GEMLM_DATA_DIR", raising=False)
    assert shown_data_dir("../shared/data", Path("/abs/shared/data")) == "../shared/data"
    assert shown_data_dir(tmp_path / "d", tmp_path / "d") == "d"
    assert shown_data_dir(None, tmp_path / "d") == "d"
    monkeypatch.setenv("GEMLM_DATA_DIR", str(tmp_path / "env"))
    assert shown_data_dir(None, tmp_path / "env") == "$GEMLM_DATA_DIR = env"
