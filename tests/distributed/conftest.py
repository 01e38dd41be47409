"""Shared by the Ray tests (gemlm/distributed/): the tiny model as a gemlm folder, one local
Ray for the package, input files and the checks on what a run wrote.

Ray runs locally (``num_cpus=2``, no dashboard, no usage statistics); workers load the tiny
model from a folder, never from a pickle. ``test_embed.py``: files -> Parquet parts by the
Python API (vectors equal ``encode``, resumable output folders); ``test_cli.py``: ``gemlm embed
--engine ray``; ``test_rag.py``: the RAG indexer on Ray; ``test_cluster.py``: a real two-node
cluster by address.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gemlm import distributed as dist
from gemlm.cli import app
from gemlm.model import GEMModel

ray = pytest.importorskip("ray")

LINES = [
    "the cat sat on the mat",
    "",
    "a quick brown fox jumps over the lazy dog",
    "   ",
    "stocks fell sharply today while bonds rose",
    "the cat sat on the mat",  # repeated: one id, written once
    "paris is the capital of france",
    "the weather is sunny with a chance of rain tomorrow and the day after it",
    "language models can embed text",
]
ROWS = [
    {"id": "r1", "text": "berlin is the capital of germany"},
    {"id": 7, "text": "the dog sat on the rug"},
    {"text": "bonds rose while stocks fell"},
    {"text": "paris is the capital of france"},  # same text as a .txt line: same id
    {"id": "r2", "text": "generate text and embed text with one model", "extra": [1, 2]},
]


def filler(n: int, start: int = 0) -> list[str]:
    """Distinct texts, enough that Ray cuts each file into several blocks."""
    words = ["cat", "dog", "fox", "mat", "rug", "rain", "bonds", "stocks", "paris", "text"]
    return [
        f"the {words[i % 10]} and the {words[i // 10 % 10]} number {i}"
        for i in range(start, start + n)
    ]


def write_inputs(folder: Path, n: int = 0) -> tuple[list[Path], dict[str, str]]:
    """A .txt and a .jsonl input (plus ``n`` filler texts in each), and the {id: text} an
    embedding run must produce."""
    folder.mkdir(parents=True, exist_ok=True)
    txt, jl = folder / "lines.txt", folder / "rows.jsonl"
    lines, rows = LINES + filler(n), ROWS + [{"text": t} for t in filler(n, n)]
    txt.write_text("\n".join(lines) + "\n")
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    expected = {dist.text_id(t): t for t in lines if t.strip()}
    for r in rows:
        expected[str(r["id"]) if "id" in r else dist.text_id(r["text"])] = r["text"]
    return [txt, jl], expected


def stored(out: Path) -> tuple[list[str], dict[str, str], dict[str, np.ndarray]]:
    """Every id in the folder's parts (duplicates kept), and text and vector by id."""
    table = dist.read_embeddings(out)
    ids = table.column("id").to_pylist()
    vectors = dist.vector_matrix(table)
    texts = dict(zip(ids, table.column("text").to_pylist(), strict=True))
    return ids, texts, dict(zip(ids, vectors, strict=True))


def assert_like_encode(gem: GEMModel, expected: dict[str, str], out: Path) -> None:
    ids, texts, vectors = stored(out)
    assert sorted(ids) == sorted(expected)  # every id, each exactly once
    assert texts == expected
    want = gem.encode(list(expected.values()))
    for rid, w in zip(expected, want, strict=True):
        np.testing.assert_allclose(vectors[rid], w, atol=1e-5, rtol=0)


@pytest.fixture(scope="package")
def gem_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model saved as a gemlm folder with document/query prompts (workers load it)."""
    gem = GEMModel.from_pretrained(str(tiny_llama_dir), dtype="float32")
    gem.config.prompts = {"document": "passage: ", "query": "question: "}
    return gem.save_pretrained(tmp_path_factory.mktemp("gem") / "model")


@pytest.fixture(scope="package")
def gem(gem_dir: Path) -> GEMModel:
    return GEMModel.from_pretrained(str(gem_dir), dtype="float32")


@pytest.fixture(scope="package")
def ray_temp() -> Iterator[str]:
    """Ray's session folder for this package (short: Ray's socket paths are limited)."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    yield temp
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def local_ray(ray_temp: str, monkeypatch: pytest.MonkeyPatch):
    """One local 2-CPU Ray for the package (restarted if the cluster test shut it down)."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # loopback only; no token in ~/.ray
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=ray_temp)
    return ray


RUN = dict(dtype="float32", actors=2, group_size=4, part_rows=4)


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])
