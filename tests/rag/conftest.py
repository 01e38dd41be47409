"""Shared fixtures for the RAG tests: a loaded tiny model, small generated documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemlm.model import GEMModel

FACTS = [
    "paris is the capital of france and berlin is the capital of germany.",
    "the cat sat on the mat and the dog sat on the rug.",
    "stocks fell sharply today while bonds rose.",
    "the weather is sunny with a chance of rain tomorrow.",
]


@pytest.fixture(scope="module")
def tiny_gem(tiny_llama_dir: Path) -> GEMModel:
    return GEMModel.from_pretrained(str(tiny_llama_dir), dtype="float32")


def make_docs(folder: Path) -> Path:
    """A .txt long enough to chunk, a .md, a .jsonl and a SQuAD-style .json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "long.txt").write_text(" ".join(FACTS * 6))
    (folder / "notes.md").write_text("# Markets\n\n" + FACTS[2])
    rows = [{"id": "w1", "title": "Weather", "text": FACTS[3]}]
    (folder / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    squad = {
        "data": [
            {
                "title": "Capitals",
                "paragraphs": [
                    {"context": FACTS[0], "qas": []},
                    {"context": FACTS[1], "qas": []},
                ],
            }
        ]
    }
    (folder / "squad.json").write_text(json.dumps(squad))
    return folder


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return make_docs(tmp_path / "docs")


TWO_FILES = {
    "a.txt": "paris is the capital of france and berlin is the capital of germany.",
    "b.txt": "stocks fell sharply today while bonds rose. " * 8,
}


@pytest.fixture
def two_files():
    """Writes :data:`TWO_FILES` into a folder (made if missing) and returns it."""

    def write(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in TWO_FILES.items():
            (folder / name).write_text(text)
        return folder

    return write
