"""The RAG indexer on Ray: ``index_paths_ray`` stores what ``index_paths`` stores, and
``gemlm rag index --engine ray`` embeds in the actors, not in the CLI's process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gemlm import distributed as dist
from gemlm.model import GEMModel
from gemlm.rag.indexing import index_paths
from gemlm.rag.store import RagStore

from .conftest import LINES, ROWS, run


def make_docs(folder: Path) -> Path:
    """A .txt long enough to chunk and a SQuAD-style .json (one passage per paragraph)."""
    folder.mkdir(parents=True)
    (folder / "long.txt").write_text(" ".join(t for t in LINES if t.strip()) * 3)
    squad = {"data": [{"title": "T", "paragraphs": [{"context": r["text"]} for r in ROWS]}]}
    (folder / "squad.json").write_text(json.dumps(squad))
    return folder


def test_index_paths_ray_matches_index_paths(
    local_ray, gem_dir: Path, gem: GEMModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    docs = make_docs(tmp_path / "docs")
    seen: dict[str, dict[str, np.ndarray]] = {"local": {}, "ray": {}}
    kw = dict(model_id="tiny", chunk_tokens=16, overlap=2, batch_size=2)
    ray_kw = dict(actors=2, group_size=4, upsert_batch=3, dtype="float32", **kw)
    with RagStore(tmp_path / "q") as store:
        real = store.upsert

        def spy(collection, ids, vectors, payloads) -> None:
            seen[collection].update(zip(ids, np.asarray(vectors, np.float32), strict=True))
            real(collection, ids, vectors, payloads)

        monkeypatch.setattr(store, "upsert", spy)
        local = index_paths(gem, store, "local", [docs], **kw)
        report = dist.index_paths_ray(str(gem_dir), store, "ray", [docs], **ray_kw)
        assert report.as_dict() == local.as_dict() and report.added == report.passages > 6
        assert store.count("ray") == store.count("local") == report.passages
        assert seen["ray"].keys() == seen["local"].keys()
        for pid, vector in seen["local"].items():
            np.testing.assert_allclose(seen["ray"][pid], vector, atol=1e-5, rtol=0)
        again = dist.index_paths_ray(str(gem_dir), store, "ray", [docs], model=gem, **ray_kw)
        assert (again.added, again.already_present) == (0, report.passages)
        assert store.count("ray") == report.passages


def test_cli_rag_index_engine_ray(
    local_ray, gem_dir: Path, gem: GEMModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    docs = make_docs(tmp_path / "docs")
    with RagStore(tmp_path / "local") as store:
        local = index_paths(gem, store, "kb", [docs], model_id=str(gem_dir), chunk_tokens=16)

    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("--engine ray embedded in the CLI's process")

    monkeypatch.setattr("gemlm.rag.indexing.index_paths", not_here)
    opts = ["--collection", "kb", "--model", gem_dir, "--dtype", "float32", "--chunk-tokens", 16]
    opts += ["--qdrant-path", tmp_path / "q", "--engine", "ray", "--actors", 2]
    first = run("rag", "index", docs, *opts)
    assert first.exit_code == 0, first.output
    assert f"{local.passages} passages ({local.passages} added" in " ".join(first.output.split())
    again = run("rag", "index", docs, *opts)
    assert again.exit_code == 0, again.output
    said = " ".join(again.output.split())
    assert f"(0 added, {local.passages} already present" in said
    with RagStore(tmp_path / "q") as store:
        assert store.count("kb") == local.passages
