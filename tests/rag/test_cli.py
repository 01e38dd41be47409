from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gemlm.cli import app

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
