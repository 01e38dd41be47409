"""Tiny generated task files for every task type (and MMLU/ARC/Wikipedia) in one data folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

TOPICS = {
    "pets": ["the cat sat on the mat", "the dog sat on the rug", "a cat and a dog"],
    "finance": ["stocks fell sharply today", "bonds rose while stocks fell", "the stock market"],
    "weather": ["sunny with a chance of rain", "rain tomorrow and sunny today", "the weather"],
}


def _write_csv(path: Path, rows: list[list[object]], delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)


def make_data(root: Path) -> Path:
    texts = [(t, label) for label, ts in TOPICS.items() for t in ts]
    _write_csv(
        root / "sts/test.tsv",
        [["a", "b", "gold"]]
        + [[t1, t2, 5.0 if l1 == l2 else 1.0] for (t1, l1) in texts[:6] for (t2, l2) in texts[3:5]],
        "\t",
    )
    _write_csv(root / "cls/train.csv", [["text", "label"]] + [[t, lab] for t, lab in texts * 3])
    _write_csv(root / "cls/test.csv", [["text", "label"]] + [[t, lab] for t, lab in texts])
    (root / "cls/lines.txt").write_text(
        "text;label\n" + "".join(f"{t}; really;{lab}\n" for t, lab in texts), encoding="utf-8"
    )
    _write_csv(
        root / "pair/test.csv",
        [["s1", "s2", "dup"]]
        + [[t1, t2, int(l1 == l2)] for (t1, l1) in texts[:4] for (t2, l2) in texts[::3]],
    )
    _write_csv(root / "clu/test.csv", [["text", "topic"]] + [[t, lab] for t, lab in texts * 2])
    beir = root / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": f"d{i}", "title": "", "text": t}) + "\n"
            for i, (t, _) in enumerate(texts)
        ),
        encoding="utf-8",
    )
    (beir / "queries.jsonl").write_text(
        "".join(
            json.dumps({"_id": f"q{i}", "text": t.split()[1]}) + "\n"
            for i, (t, _) in enumerate(texts[:4])
        ),
        encoding="utf-8",
    )
    (beir / "qrels/test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(4)),
        encoding="utf-8",
    )
    squad = {
        "data": [
            {
                "title": lab,
                "paragraphs": [
                    {
                        "context": t,
                        "qas": [
                            {
                                "id": f"{lab}{j}",
                                "question": f"what about {t.split()[-1]}?",
                                "answers": [{"text": "x", "answer_start": 0}],
                            }
                        ],
                    }
                    for j, t in enumerate(ts)
                ],
            }
            for lab, ts in TOPICS.items()
        ]
    }
    (root / "squad.json").write_text(json.dumps(squad), encoding="utf-8")
    for split, n in (("dev", 5), ("test", 3)):
        for subject in ("anatomy", "virology"):
            _write_csv(
                root / f"mmlu/{split}/{subject}_{split}.csv",
                [["question", "choice0", "choice1", "choice2", "choice3", "answer"]]
                + [
                    [f"{subject} question {i}?", "cat", "dog", "rain", "stocks", i % 4]
                    for i in range(n)
                ],
            )
    arc = root / "arc/test.jsonl"
    arc.parent.mkdir()
    arc.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"a{i}",
                    "answerKey": "B" if i % 2 else "2",
                    "question": {
                        "stem": f"which {i}?",
                        "choices": [
                            {"text": "the cat", "label": "A" if i % 2 else "1"},
                            {"text": "the weather", "label": "B" if i % 2 else "2"},
                            {"text": "stocks", "label": "C" if i % 2 else "3"},
                        ],
                    },
                }
            )
            + "\n"
            for i in range(4)
        ),
        encoding="utf-8",
    )
    wiki = root / "wiki/AA"
    wiki.mkdir(parents=True)
    wiki.joinpath("wiki_00").write_text(
        "".join(
            f'<doc id="{i}" url="?curid={i}" title="T{i}">\nT{i}\n\n'
            f"{t} and {t} once more with feeling here.\n</doc>\n"
            for i, (t, _) in enumerate(texts)
        ),
        encoding="utf-8",
    )
    return root


SPECS = {
    "sts": {
        "name": "TinySTS",
        "type": "sts",
        "splits": {"test": "sts/test.tsv"},
        "format": "tsv",
        "columns": {"sentence1": "a", "sentence2": "b", "score": "gold"},
        "score_range": [0, 5],
    },
    "classification": {
        "name": "TinyCls",
        "type": "classification",
        "splits": {"train": "cls/train.csv", "test": "cls/test.csv"},
        "columns": {"text": "text", "label": "label"},
        "options": {"samples_per_label": 2, "n_experiments": 2},
    },
    "lines": {
        "name": "TinyLines",
        "type": "classification",
        "format": "lines",
        "delimiter": ";",
        "splits": {"train": "cls/lines.txt", "test": "cls/lines.txt"},
        "columns": {"text": "text", "label": "label"},
        "options": {"samples_per_label": 2, "n_experiments": 1},
    },
    "pair_classification": {
        "name": "TinyPairs",
        "type": "pair_classification",
        "splits": {"test": "pair/test.csv"},
        "columns": {"sentence1": "s1", "sentence2": "s2", "label": "dup"},
    },
    "clustering": {
        "name": "TinyClusters",
        "type": "clustering",
        "splits": {"test": "clu/test.csv"},
        "columns": {"text": "text", "label": "topic"},
        "options": {"n_clusters": 2},
    },
    "beir": {"name": "TinyBEIR", "type": "retrieval", "source": "beir", "path": "beir"},
    "squad": {
        "name": "TinySQuAD",
        "type": "retrieval",
        "source": "squad",
        "path": "squad.json",
        "sample": {"n": 5, "seed": 0},
    },
}


@pytest.fixture(scope="session")
def task_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data(tmp_path_factory.mktemp("eval-data"))
