from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from gemlm.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_info(tiny_llama_dir) -> None:
    r = run("info", "--model", tiny_llama_dir, "--dtype", "float32")
    assert r.exit_code == 0, r.output
    assert "LlamaForCausalLM" in r.output and "<|gem_0|>" in r.output


def test_embed_to_npy_and_jsonl(tiny_llama_dir, tmp_path) -> None:
    src = tmp_path / "texts.txt"
    src.write_text("the cat sat\n\na quick brown fox\n")
    npy = tmp_path / "e.npy"
    r = run("embed", "--file", src, "--out", npy, "--model", tiny_llama_dir, "--dtype", "float32")
    assert r.exit_code == 0, r.output
    assert np.load(npy).shape == (2, 32)
    jl = tmp_path / "e.jsonl"
    r = run("embed", "paris", "--out", jl, "--model", tiny_llama_dir, "--dtype", "float32")
    assert r.exit_code == 0, r.output
    row = json.loads(jl.read_text())
    assert row["text"] == "paris" and len(row["embedding"]) == 32


def test_similarity_and_generate(tiny_llama_dir) -> None:
    r = run("similarity", "the cat", "the dog", "--model", tiny_llama_dir)
    assert r.exit_code == 0 and "cosine similarity" in r.output
    r = run("generate", "the cat", "--no-chat", "--max-new-tokens", "4", "--model", tiny_llama_dir)
    assert r.exit_code == 0, r.output


def test_chat_session_ends_on_empty_line(tiny_llama_dir) -> None:
    r = runner.invoke(
        app, ["chat", "--model", str(tiny_llama_dir), "--max-new-tokens", "4"], input="hi\n\n"
    )
    assert r.exit_code == 0, r.output
    assert "gem>" in r.output


def test_errors_are_one_clear_line() -> None:
    r = run("info", "--model", "no-such-model")
    assert r.exit_code == 2 and "unknown model" in r.output
    r = run("embed", "--file", "/nope.txt", "--model", "no-such-model")
    assert r.exit_code == 2 and "no such file" in r.output
    r = run("embed")
    assert r.exit_code == 2
