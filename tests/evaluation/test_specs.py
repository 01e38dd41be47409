"""Bad specs fail with the spec file and the field named, before any model is loaded."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from gemlm.evaluation import run as run_module
from gemlm.evaluation.readers import read_task
from gemlm.evaluation.specs import SpecError, load_spec, parse_spec
from gemlm.evaluation.suite import load_suite

from .conftest import SPECS, _write_csv


def _suite(tmp_path: Path, spec: dict) -> Path:
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(spec))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "bad", "embedding": ["task.yaml"]}))
    return suite


def _expect(tmp_path, task_data, monkeypatch, spec: dict, field: str, words: str) -> None:
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the spec was checked")

    monkeypatch.setattr(run_module, "load_backend", no_model)
    with pytest.raises(SpecError) as err:
        run_module.evaluate(
            ["mean:/nonexistent"], suite=_suite(tmp_path, spec), out=tmp_path / "o", data=task_data
        )
    assert err.value.field == field
    assert "task.yaml" in str(err.value) and words in str(err.value)


def test_missing_file(tmp_path, task_data, monkeypatch):
    spec = copy.deepcopy(SPECS["sts"])
    spec["splits"]["test"] = "sts/nope.tsv"
    _expect(tmp_path, task_data, monkeypatch, spec, "splits.test", "file not found")


def test_missing_column(tmp_path, task_data, monkeypatch):
    spec = copy.deepcopy(SPECS["sts"])
    spec["columns"]["score"] = "similarity"
    _expect(tmp_path, task_data, monkeypatch, spec, "columns.score", "'similarity' not in")


def test_unknown_type(tmp_path, task_data, monkeypatch):
    spec = {**SPECS["sts"], "type": "reranking"}
    _expect(tmp_path, task_data, monkeypatch, spec, "type", "unknown task type 'reranking'")


def test_single_class_label(tmp_path, task_data, monkeypatch):
    _write_csv(task_data / "one/train.csv", [["text", "label"], ["a b", "x"], ["c d", "x"]])
    spec = copy.deepcopy(SPECS["classification"])
    spec["splits"]["train"] = "one/train.csv"
    _expect(tmp_path, task_data, monkeypatch, spec, "columns.label", "single class")


def test_score_out_of_range(tmp_path, task_data, monkeypatch):
    spec = {**SPECS["sts"], "score_range": [0, 1]}
    _expect(tmp_path, task_data, monkeypatch, spec, "score_range", "outside [0.0, 1.0]")


def test_empty_split(tmp_path, task_data, monkeypatch):
    _write_csv(task_data / "empty/test.csv", [["text", "topic"]])
    spec = {**SPECS["clustering"], "splits": {"test": "empty/test.csv"}}
    _expect(tmp_path, task_data, monkeypatch, spec, "splits.test", "has no rows")


def test_missing_split_and_role(tmp_path):
    with pytest.raises(SpecError, match="needs a 'train' split"):
        parse_spec({**SPECS["classification"], "splits": {"test": "cls/test.csv"}}, "x.yaml")
    with pytest.raises(SpecError, match="'score'"):
        parse_spec({**SPECS["sts"], "columns": {"sentence1": "a", "sentence2": "b"}}, "x.yaml")


def test_every_type_reads(task_data):
    sizes = {}
    for key, raw in SPECS.items():
        sizes[key] = read_task(parse_spec(raw, f"{key}.yaml"), task_data).sizes()
    assert sizes["sts"] == {"test": 12}
    assert sizes["lines"] == {"train": 9, "test": 9}  # split on the LAST ';' of each line
    assert sizes["beir"] == {"queries": 4, "corpus": 9}
    assert sizes["squad"] == {"queries": 5, "corpus": 9}
    lines = read_task(parse_spec(SPECS["lines"], "l.yaml"), task_data).splits["test"]
    assert lines[0] == {"text": "the cat sat on the mat; really", "label": "pets"}


def test_shipped_specs_and_suites_parse():
    for name in ("stsbenchmark", "banking77", "emotion", "scifact", "squad"):
        assert load_spec(name).name
    dev = load_suite("dev")
    assert [t.name for t in dev.tasks] == [
        "STSBenchmark",
        "Banking77",
        "Emotion",
        "SciFact",
        "SQuADRetrieval",
    ]
    assert dev.generation["mmlu"]["per_subject"] == 10
