"""``gemlm embed --engine ray``: the vectors of ``encode``, and its usage errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gemlm.model import GEMModel

from .conftest import assert_like_encode, run, write_inputs


def test_cli_engine_ray(local_ray, gem_dir: Path, gem: GEMModel, tmp_path: Path) -> None:
    files, expected = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    opts = ["--engine", "ray", "--out", out, "--model", gem_dir, "--dtype", "float32"]
    r = run(
        "embed", files[0], "--file", files[1], *opts, "--actors", "1", "--threads-per-actor", "2"
    )
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert f"wrote {len(expected)} embeddings" in said and "0 already there" in said
    assert_like_encode(gem, expected, out)


def test_cli_engine_ray_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = tmp_path / "a.txt"
    text.write_text("one text\n")

    def error(*args: object) -> str:
        r = run("embed", *args)
        assert r.exit_code == 2, r.output
        return " ".join(r.output.split())

    assert "no inputs" in error("--engine", "ray", "--out", tmp_path / "o")
    assert "no such file" in error("--engine", "ray", tmp_path / "nope.txt", "--out", tmp_path)
    assert "must be a folder" in error("--engine", "ray", text, "--out", text)
    assert "needs --out DIR" in error("--engine", "ray", text)
    assert "need --engine ray" in error("a text", "--actors", "2")
    assert "unknown --engine" in error("a text", "--engine", "spark")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    assert 'pip install "gemlm[ray]"' in error("--engine", "ray", text, "--out", tmp_path / "o")
