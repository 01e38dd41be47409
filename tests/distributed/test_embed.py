"""Files -> Parquet parts by the Python API: the vectors of ``encode``, an interrupted run
completed without duplicates, one model per output folder, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gemlm import distributed as dist
from gemlm.model import GEMModel
from gemlm.rag.documents import ID_NAMESPACE

from .conftest import RUN, assert_like_encode, stored, write_inputs


def test_ray_vectors_equal_encode(local_ray, gem_dir: Path, gem: GEMModel, tmp_path: Path):
    files, expected = write_inputs(tmp_path / "in", n=100)
    report = dist.embed_files_ray(str(gem_dir), files, tmp_path / "out", **RUN)
    assert_like_encode(gem, expected, tmp_path / "out")
    assert (report.written, report.already_present, report.files) == (len(expected), 0, 2)
    assert report.actors == 2 and report.nodes == 1
    assert all(n.startswith("part-") for n in report.parts)


@pytest.mark.slow  # two Ray runs: ~50 s on 2 busy cores
def test_interrupted_run_completes_without_duplicates(
    local_ray, gem_dir: Path, gem: GEMModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    files, expected = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    real, calls = dist.parts._dump_table, []

    def killed_on_second_part(table, fh) -> None:
        calls.append(1)
        if len(calls) == 2:  # the process dies half-way through writing its second part
            fh.write(b"PAR1 half of a part")
            raise KeyboardInterrupt
        real(table, fh)

    monkeypatch.setattr(dist.parts, "_dump_table", killed_on_second_part)
    with pytest.raises(KeyboardInterrupt):
        dist.embed_files_ray(str(gem_dir), files, out, **RUN)
    assert len(list(out.glob("part-*.parquet"))) == 1
    assert len(list(out.glob(".part-*.parquet.tmp"))) == 1  # the half-written part
    first, _, _ = stored(out)  # readers skip the temporary file

    monkeypatch.setattr(dist.parts, "_dump_table", real)
    report = dist.embed_files_ray(str(gem_dir), files, out, **RUN)
    assert report.temp_removed == 1 and not list(out.glob(".part-*"))
    assert report.already_present == len(first) >= 1
    assert report.written == len(expected) - len(first)
    assert_like_encode(gem, expected, out)


def test_text_ids_share_the_passage_namespace() -> None:
    assert dist.ID_NAMESPACE == ID_NAMESPACE
    assert dist.text_id("a") == dist.text_id("a") != dist.text_id("a ")


def test_a_folder_holds_one_model(gem_dir: Path, tmp_path: Path) -> None:
    files, _ = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    dist.check_manifest(out, {"model": "another-model", "prompt_name": None})
    dist.write_part(out, "part-x-00000", dist.embeddings_table(["i"], ["a"], np.zeros((1, 4))))
    with pytest.raises(dist.EngineError, match="use another --out"):
        dist.embed_files_ray(str(gem_dir), files, out, **RUN)


def test_bad_jsonl_line_is_a_clear_error(local_ray, gem_dir: Path, tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"title": "no text here"}\n')
    with pytest.raises(dist.EngineError, match=r"bad.jsonl: a row has no string 'text' field"):
        dist.embed_files_ray(str(gem_dir), [bad], tmp_path / "out", **{**RUN, "actors": 1})
