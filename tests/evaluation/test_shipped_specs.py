"""The shipped specs and suites read exactly the rows and subsets they always did.

A tiny mirror of the shared data folder (same paths, same formats, with quoted commas and
newlines, ';' inside Emotion texts, sentence-list abstracts and repeated claims) is read through
every shipped spec and every shipped suite's overrides, with and without ``--limit``, and compared
with the rows an independent plain reading gives (csv module, ``rsplit`` on the last ';', JSON),
subsets drawn as ``sorted(random.Random(seed).sample(range(n), k))``.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest

from gemlm.evaluation.readers import TaskData, read_task
from gemlm.evaluation.specs import TaskSpec, load_spec
from gemlm.evaluation.suite import load_suite

from .conftest import _write_csv

LABELS = ["card_arrival", "lost_card", "top_up", "exchange_rate"]
EMOTIONS = ["sadness", "joy", "anger"]


def _make_mirror(root: Path) -> Path:
    sts = [
        [f"a man, number {i}, plays", f'a "quoted" man {i}', f"{i % 51 / 10}"] for i in range(400)
    ]
    _write_csv(root / "stsbenchmark/stsb-en-test.csv", sts)
    for split, n in (("train", 80), ("test", 1200)):
        rows = [[f"where is card {i}, please?\nthanks", LABELS[i % 4]] for i in range(n)]
        _write_csv(root / f"banking77/{split}.csv", [["text", "category"], *rows])
        lines = [f"i feel; {i} so good;{EMOTIONS[i % 3]}\n" for i in range(n)]
        path = root / f"emotion/{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("text;label_name\n" + "".join(lines), encoding="utf-8")
    corpus = [
        [str(1000 + d), f"Title {d}", f"['First, {d}.' 'It\\'s \"two\".']", "False"]
        for d in range(400)
    ]
    _write_csv(
        root / "scifact/corpus_train.csv", [["doc_id", "title", "abstract", "structured"], *corpus]
    )
    claims = [[str(q), f"claim {q}, maybe", str(1000 + q), "SUPPORT"] for q in range(150)]
    claims += [[str(q), f"claim {q}, again", str(1200 + q), "SUPPORT"] for q in range(0, 150, 7)]
    header = ["id", "claim", "evidence_doc_id", "evidence_label"]
    _write_csv(root / "scifact/claims_validation.csv", [header, *claims])
    qrels = [[str(q), str(1000 + q), "1"] for q in range(140)]  # 10 claims have no judgement
    _write_csv(
        root / "scifact/beir_qrels/test.tsv", [["query-id", "corpus-id", "score"], *qrels], "\t"
    )
    paragraphs = [
        {
            "context": f"paragraph {p}",
            "qas": [{"id": f"q{p}-{k}", "question": f"{p} {k}?"} for k in range(10)],
        }
        for p in range(40)
    ]
    squad = {
        "data": [
            {"title": "T", "paragraphs": paragraphs[:20]},
            {"title": "U", "paragraphs": paragraphs[20:]},
        ]
    }
    (root / "squad_v1.1").mkdir(parents=True)
    (root / "squad_v1.1/dev-v1.1.json").write_text(json.dumps(squad), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_mirror(tmp_path_factory.mktemp("shared-data"))


def _pick(n: int, k: int, seed: int) -> list[int]:
    return list(range(n)) if k >= n else sorted(random.Random(seed).sample(range(n), k))


def _csv(path: Path, delimiter: str = ",") -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter=delimiter))


def _plain_splits(name: str, data: Path) -> dict[str, list[dict[str, Any]]]:
    """The rows of a table task read without gemlm's readers."""
    if name == "STSBenchmark":
        rows = _csv(data / "stsbenchmark/stsb-en-test.csv")
        return {"test": [{"sentence1": a, "sentence2": b, "score": float(s)} for a, b, s in rows]}
    if name == "Banking77":
        return {
            s: [{"text": t, "label": c} for t, c in _csv(data / f"banking77/{s}.csv")[1:]]
            for s in ("train", "test")
        }
    lines = {s: (data / f"emotion/{s}.txt").read_text().splitlines()[1:] for s in ("train", "test")}
    return {
        s: [dict(zip(("text", "label"), x.rsplit(";", 1), strict=True)) for x in v]
        for s, v in lines.items()
    }


def _plain_retrieval(name: str, data: Path) -> tuple[dict, dict, dict]:
    """(corpus, queries, qrels) of a retrieval task read without gemlm's readers."""
    if name == "SQuADRetrieval":
        raw = json.loads((data / "squad_v1.1/dev-v1.1.json").read_text())
        corpus, queries, qrels = {}, {}, {}
        for a, art in enumerate(raw["data"]):
            for p, para in enumerate(art["paragraphs"]):
                corpus[f"{a}-{p}"] = {"title": art["title"], "text": para["context"]}
                for qa in para["qas"]:
                    queries[qa["id"]], qrels[qa["id"]] = qa["question"], {f"{a}-{p}": 1}
        return corpus, queries, qrels
    corpus = {
        d: {"title": t, "text": f'First, {int(d) - 1000}. It\'s "two".'}
        for d, t, _, _ in _csv(data / "scifact/corpus_train.csv")[1:]
    }
    queries: dict[str, str] = {}
    for q, claim, *_ in _csv(data / "scifact/claims_validation.csv")[1:]:
        queries.setdefault(q, claim)
    qrels = {q: {d: int(s)} for q, d, s in _csv(data / "scifact/beir_qrels/test.tsv", "\t")[1:]}
    return corpus, {q: t for q, t in queries.items() if q in qrels}, qrels


def _expected_table(spec: TaskSpec, data: Path, limit: int | None) -> dict[str, list]:
    splits = _plain_splits(spec.name, data)
    ev = spec.eval_split
    steps = [(spec.sample.n, spec.sample.seed)] if spec.sample and spec.sample.n else []
    for k, seed in [*steps, *([(limit, 0)] if limit else [])]:
        splits[ev] = [splits[ev][i] for i in _pick(len(splits[ev]), k, seed)]
    if limit and spec.type == "classification":
        splits["train"] = [
            splits["train"][i] for i in _pick(len(splits["train"]), max(8 * limit, 200), 0)
        ]
    return splits


def _expected_retrieval(spec: TaskSpec, data: Path, limit: int | None) -> tuple[dict, dict, dict]:
    corpus, queries, qrels = _plain_retrieval(spec.name, data)
    steps = [(spec.sample.n, spec.sample.seed)] if spec.sample and spec.sample.n else []
    for k, seed in [*steps, *([(limit, 0)] if limit else [])]:
        ids = sorted(queries)
        queries = {ids[i]: queries[ids[i]] for i in _pick(len(ids), k, seed)}
    qrels = {q: qrels[q] for q in queries}
    distractors = spec.corpus_sample.distractors if spec.corpus_sample else None
    if limit:
        distractors = min(distractors or limit, limit)
    if distractors is not None:
        seed = spec.corpus_sample.seed if spec.corpus_sample else 0
        relevant = {d for q in qrels.values() for d in q}
        others = sorted(set(corpus) - relevant)
        keep = relevant | {others[i] for i in _pick(len(others), distractors, seed)}
        corpus = {d: v for d, v in corpus.items() if d in keep}
    for doc in corpus.values():
        doc["text"] = doc["text"][: spec.max_chars or None]
    return corpus, queries, qrels


def _assert_as_before(task: TaskData, data: Path, limit: int | None) -> None:
    spec = task.spec
    if spec.type == "retrieval":
        assert (task.corpus, task.queries, task.qrels) == _expected_retrieval(spec, data, limit)
    else:
        assert task.splits == _expected_table(spec, data, limit)
    assert "skipped" not in task.summary() and "filtered" not in task.summary()


SHIPPED = ["stsbenchmark", "banking77", "emotion", "scifact", "squad"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spec_reads_as_before(mirror, name):
    _assert_as_before(read_task(load_spec(name), mirror), mirror, None)


@pytest.mark.parametrize("suite", ["dev", "quick", "report", "demo"])
@pytest.mark.parametrize("limit", [None, 7])
def test_shipped_suite_subsets_as_before(mirror, suite, limit):
    for spec in load_suite(suite).tasks:
        _assert_as_before(read_task(spec, mirror, limit), mirror, limit)


def test_shipped_subsets_are_described(mirror):
    tasks = {t.name: read_task(t, mirror) for t in load_suite("report").tasks}
    assert tasks["STSBenchmark"].summary() == "test 400 pairs = 800 texts"
    assert tasks["Banking77"].summary() == "train 80 texts; test 1,000 of 1,200 texts"
    assert tasks["SciFact"].summary() == "queries 140 + corpus 400 = 540 texts"
    assert tasks["SQuADRetrieval"].summary() == "queries 300 of 400 + corpus 40 = 340 texts"
