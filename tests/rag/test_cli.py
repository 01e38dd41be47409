from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gemlm.cli import app
from gemlm.model import GEMModel
from gemlm.rag.store import RagStore

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_index_then_ask(tiny_llama_dir: Path, docs: Path, tmp_path: Path) -> None:
    (docs / "blob.txt").write_bytes(b"\x00\x01binary")
    q = ["--qdrant-path", tmp_path / "q"]
    common = ["--collection", "kb", *q]
    r = run(
        "rag",
        "index",
        docs,
        *common,
        "--model",
        tiny_llama_dir,
        "--dtype",
        "float32",
        "--chunk-tokens",
        "32",
        "--overlap",
        "4",
    )
    assert r.exit_code == 0, r.output
    assert "blob.txt" in r.output and "4 files" in r.output
    r = run(
        "rag",
        "index",
        docs,
        *common,
        "--model",
        tiny_llama_dir,
        "--chunk-tokens",
        "32",
        "--overlap",
        "4",
    )
    assert r.exit_code == 0 and "0 added" in r.output, r.output

    r = run(
        "rag",
        "ask",
        "what is the capital of france",
        *common,
        "--top-k",
        "2",
        "--max-new-tokens",
        "3",
        "--json",
        "--reuse",
        "--dtype",
        "float32",
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout[r.stdout.index("{") :])
    assert [s["rank"] for s in out["sources"]] == [1, 2] and "score" in out["sources"][0]
    assert "answer" in out and out["reused_tokens"] > 0

    r = run("rag", "ask", "capital?", *common, "--max-new-tokens", "3", "--dtype", "float32")
    assert r.exit_code == 0 and "sources" in r.output and "[1]" in r.output, r.output


def test_clear_errors(tiny_llama_dir: Path, tmp_path: Path) -> None:
    q = ["--qdrant-path", tmp_path / "q"]
    r = run("rag", "ask", "hi", "--collection", "missing", *q)
    assert r.exit_code == 2 and "no collection 'missing'" in r.output
    (tmp_path / "empty.txt").write_text("   \n")
    r = run(
        "rag", "index", tmp_path / "empty.txt", "--collection", "x", *q, "--model", tiny_llama_dir
    )
    assert r.exit_code == 2 and "no readable text" in r.output


def said(r) -> str:
    """The output on one line (rich wraps long lines at the terminal width)."""
    return " ".join(r.output.split())


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch, tiny_llama_dir: Path) -> list[str]:
    """Every model the CLI loads, by name; only the tiny model really loads (never the real one)."""
    seen: list[str] = []
    real = GEMModel.from_pretrained

    def recording(name: str, **kwargs: object) -> GEMModel:
        seen.append(str(name))
        if Path(str(name)).resolve() != tiny_llama_dir.resolve():
            raise ValueError(f"test: not loading {name}")
        return real(name, **kwargs)

    monkeypatch.setattr(GEMModel, "from_pretrained", recording)
    return seen


def index_cmd(*args: object, store: str = "edge"):
    return run("rag", "index", *args, "--chunk-tokens", 16, "--overlap", 2, "--store", store)


def listing(q: Path, *args: object, store: str = "edge") -> dict:
    r = run("rag", "list", "--qdrant-path", q, "--store", store, "--json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def searchable(q: Path, collection: str = "kb") -> set[str]:
    """The sources of every passage a search returns (top_k past the count: all of them)."""
    with RagStore(q) as store:
        query = np.ones(store.identity(collection)["dimension"], dtype=np.float32)
        hits = store.search(collection, query, top_k=store.count(collection) + 5)
    return {h.payload["source"] for h in hits}


def test_reindex_removes_gone_files_and_uses_the_collections_model(
    two_files, tiny_llama_dir: Path, tmp_path: Path, loads: list[str]
) -> None:
    docs, q = two_files(tmp_path / "docs"), tmp_path / "q"
    gone = str((docs / "b.txt").resolve())
    common = ["--collection", "kb", "--qdrant-path", q, "--dtype", "float32"]
    r = index_cmd(docs, *common, "--model", tiny_llama_dir)
    assert r.exit_code == 0, r.output
    n_b = listing(q, "-c", "kb")["sources"][gone]
    assert gone in searchable(q)
    (docs / "b.txt").unlink()
    r = index_cmd(docs, *common)  # no --model: the collection's, as `ask` does
    assert r.exit_code == 0, r.output
    assert loads == [str(tiny_llama_dir), str(tiny_llama_dir.resolve())]  # the stored id
    assert f"removed {n_b} passages of 1 file no longer present: {gone}" in said(r)
    assert gone not in listing(q, "-c", "kb")["sources"]
    assert searchable(q) == {str((docs / "a.txt").resolve())}


def test_keep_missing_is_said(
    two_files, tiny_llama_dir: Path, tmp_path: Path, loads: list[str]
) -> None:
    docs, q = two_files(tmp_path / "docs"), tmp_path / "q"
    common = ["--collection", "kb", "--qdrant-path", q, "--model", tiny_llama_dir]
    assert index_cmd(docs, *common).exit_code == 0
    before = listing(q, "-c", "kb")["sources"]
    (docs / "b.txt").unlink()
    r = index_cmd(docs, *common, "--keep-missing")
    assert r.exit_code == 0, r.output
    assert "of 1 file no longer present (--keep-missing)" in said(r) and "kept" in said(r)
    assert listing(q, "-c", "kb")["sources"] == before


def test_a_new_collection_uses_the_default_model(
    two_files, tmp_path: Path, loads: list[str]
) -> None:
    from gemlm.sources import DEFAULT_MODEL

    two_files(tmp_path / "docs")
    r = index_cmd(tmp_path / "docs", "--collection", "new", "--qdrant-path", tmp_path / "q")
    assert r.exit_code == 2 and loads == [DEFAULT_MODEL]  # the recorder refused to load it


def test_bad_inputs_fail_before_any_model_loads(
    two_files, tiny_llama_dir: Path, tmp_path: Path, loads: list[str]
) -> None:
    docs, q = two_files(tmp_path / "docs"), tmp_path / "q"
    common = ["--collection", "kb", "--qdrant-path", q, "--model", tiny_llama_dir]
    typo = tmp_path / "dcos"
    r = index_cmd(docs, typo, *common)
    assert r.exit_code == 2 and f"no such file or folder: {typo}" in said(r)
    assert "--skip-missing" in said(r)
    (tmp_path / "empty.md").write_text("\n \n")
    r = index_cmd(tmp_path / "empty.md", *common)
    assert r.exit_code == 2 and "no readable text" in said(r)
    assert f"1 empty file (no text): {tmp_path / 'empty.md'}" in said(r)
    (tmp_path / "blob.txt").write_bytes(b"\x00\x01")
    r = index_cmd(tmp_path / "blob.txt", *common)
    assert r.exit_code == 2 and "blob.txt: looks like a binary file" in said(r)
    assert loads == []  # no model was loaded for any of them


def test_skip_missing_indexes_the_rest_and_empty_files_are_reported(
    two_files, tiny_llama_dir: Path, tmp_path: Path, loads: list[str]
) -> None:
    docs, q = two_files(tmp_path / "docs"), tmp_path / "q"
    (docs / "empty.txt").write_text("")
    typo = tmp_path / "dcos"
    common = ["--collection", "kb", "--qdrant-path", q, "--model", tiny_llama_dir]
    r = index_cmd(docs, typo, *common, "--skip-missing")
    assert r.exit_code == 0, r.output
    assert "kb: 2 files" in said(r) and f"skipped 1 missing path: {typo}" in said(r)
    assert f"1 empty file (no text): {docs / 'empty.txt'}" in said(r)


@pytest.mark.parametrize("store", ["edge", "local"])
def test_list_and_delete(two_files, store: str, tiny_llama_dir: Path, tmp_path: Path) -> None:
    docs, q = two_files(tmp_path / "docs"), tmp_path / "q"
    a, b = (str(p.resolve()) for p in sorted(docs.iterdir()))  # a.txt, b.txt
    where = ["--qdrant-path", q, "--store", store]
    r = index_cmd(docs, "--collection", "kb", *where[:2], "--model", tiny_llama_dir, store=store)
    assert r.exit_code == 0, r.output
    all_ = listing(q, store=store)
    assert [c["collection"] for c in all_["collections"]] == ["kb"]
    kb = listing(q, "-c", "kb", store=store)
    assert kb["model"] == str(tiny_llama_dir.resolve()) and kb["dimension"] == 32
    assert sorted(kb["sources"]) == [a, b] and sum(kb["sources"].values()) == kb["passages"]
    assert all_["collections"][0] == kb
    r = run("rag", "list", *where)
    assert r.exit_code == 0 and "kb" in r.output and f"{kb['passages']}" in r.output

    r = run("rag", "delete", "-c", "kb", "--source", a, "--source", "nope.txt", *where)
    assert r.exit_code == 2 and "no passages from nope.txt" in said(r)
    assert listing(q, "-c", "kb", store=store) == kb  # nothing deleted
    r = run("rag", "delete", "-c", "kb", "--source", docs / "a.txt", *where)
    assert r.exit_code == 0, r.output
    assert f"removed {kb['sources'][a]} passages of 1 source" in said(r)
    assert list(listing(q, "-c", "kb", store=store)["sources"]) == [b]

    r = run("rag", "delete", "-c", "kb", *where)
    assert r.exit_code == 2 and "add --yes to confirm" in said(r)
    assert listing(q, store=store)["collections"][0]["collection"] == "kb"
    r = run("rag", "delete", "-c", "kb", "--yes", *where)
    assert r.exit_code == 0 and "deleted collection kb" in said(r)
    assert listing(q, store=store)["collections"] == []
    r = run("rag", "delete", "-c", "kb", "--yes", *where)
    assert r.exit_code == 2 and "no collection 'kb'" in said(r)
    r = run("rag", "list", "-c", "kb", *where)
    assert r.exit_code == 2 and "no collection 'kb'" in said(r)


def test_help_lists_the_rag_commands() -> None:
    r = run("rag", "--help")
    assert r.exit_code == 0, r.output
    for name in ["index", "ask", "list", "delete"]:
        assert re.search(rf"^\W*{name}\s", r.output, re.M), f"{name} not in gemlm rag --help"
