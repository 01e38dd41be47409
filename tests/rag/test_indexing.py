from __future__ import annotations

from pathlib import Path

import pytest

from gemlm.rag.indexing import index_paths
from gemlm.rag.store import RagStore

KW = dict(model_id="tiny", chunk_tokens=32, overlap=4, batch_size=2, group_size=4)


def test_index_is_idempotent_and_drops_stale(tiny_gem, docs: Path, tmp_path: Path) -> None:
    with RagStore(tmp_path / "q") as store:
        first = index_paths(tiny_gem, store, "c", [docs], **KW)
        assert first.files == 4 and first.added == first.passages > 6
        n = store.count("c")
        again = index_paths(tiny_gem, store, "c", [docs], **KW)
        assert (again.added, again.already_present, store.count("c")) == (0, n, n)
        (docs / "notes.md").write_text("# Markets\n\nbonds rose while stocks fell.")
        edited = index_paths(tiny_gem, store, "c", [docs / "notes.md"], **KW)
        assert edited.added >= 1 and edited.removed >= 1 and edited.already_present == 0
        assert store.count("c") == n - edited.removed + edited.added


def test_rerun_after_interruption_completes(tiny_gem, docs: Path, tmp_path: Path, monkeypatch):
    with RagStore(tmp_path / "q") as store:
        real, calls = store.upsert, []

        def flaky(*args, **kwargs):
            if len(calls) == 1:
                raise KeyboardInterrupt  # killed while embedding the second batch
            calls.append(1)
            return real(*args, **kwargs)

        monkeypatch.setattr(store, "upsert", flaky)
        with pytest.raises(KeyboardInterrupt):
            index_paths(tiny_gem, store, "c", [docs], **KW)
        assert store.count("c") == 4
        monkeypatch.setattr(store, "upsert", real)
        report = index_paths(tiny_gem, store, "c", [docs], **KW)
        assert report.already_present == 4 and report.added == report.passages - 4
        assert store.count("c") == report.passages


def test_skips_bad_files_and_rejects_oversized_chunks(tiny_gem, tmp_path: Path) -> None:
    (tmp_path / "bin.txt").write_bytes(b"\x00\xff\x00")
    with RagStore(tmp_path / "q") as store:
        with pytest.warns(UserWarning, match="bin.txt"):
            report = index_paths(tiny_gem, store, "c", [tmp_path / "bin.txt"], **KW)
        assert report.skipped == [str(tmp_path / "bin.txt")] and not store.exists("c")
        with pytest.raises(ValueError, match="does not fit the embedding window"):
            index_paths(tiny_gem, store, "c", [tmp_path], model_id="tiny", chunk_tokens=10_000)
