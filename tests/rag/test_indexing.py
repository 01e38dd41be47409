from __future__ import annotations

from pathlib import Path

import pytest

from gemlm.rag.indexing import MissingPaths, index_paths, read_inputs
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


def sources_found(store: RagStore, collection: str, vector) -> set[str]:
    """The sources of every passage a search can return (top_k = all of them)."""
    hits = store.search(collection, vector, top_k=store.count(collection) + 5)
    return {h.payload["source"] for h in hits}


@pytest.fixture(params=["edge", "local"])
def engine(request) -> str:
    return request.param


def test_reindexing_a_folder_removes_the_passages_of_files_gone(
    two_files, tiny_gem, engine: str, tmp_path: Path
) -> None:
    folder = two_files(tmp_path / "docs")
    gone = str((folder / "b.txt").resolve())
    query = tiny_gem.encode_query("stocks fell sharply today")
    with RagStore(tmp_path / "q", engine=engine) as store:
        first = index_paths(tiny_gem, store, "c", [folder], **KW)
        n_b = store.sources("c")[gone]
        assert n_b >= 2 and gone in sources_found(store, "c", query)
        (folder / "b.txt").unlink()
        again = index_paths(tiny_gem, store, "c", [folder], **KW)
        assert (again.gone_files, again.gone_passages, again.removed) == ([gone], n_b, 0)
        assert store.count("c") == first.passages - n_b
        assert gone not in store.sources("c") and gone not in sources_found(store, "c", query)
        assert store.ids_for_source("c", gone) == set()
        third = index_paths(tiny_gem, store, "c", [folder], **KW)  # nothing left to remove
        assert (third.gone_files, third.gone_passages) == ([], 0)


def test_keep_missing_keeps_them_and_counts_them(two_files, tiny_gem, tmp_path: Path) -> None:
    folder = two_files(tmp_path / "docs")
    gone = str((folder / "b.txt").resolve())
    with RagStore(tmp_path / "q") as store:
        index_paths(tiny_gem, store, "c", [folder], **KW)
        n = store.count("c")
        n_b = store.sources("c")[gone]
        (folder / "b.txt").unlink()
        kept = index_paths(tiny_gem, store, "c", [folder], keep_missing=True, **KW)
        assert (kept.gone_files, kept.gone_passages, kept.keep_missing) == ([gone], n_b, True)
        assert store.count("c") == n and store.sources("c")[gone] == n_b


def test_only_files_under_the_indexed_folders_and_really_gone_are_removed(
    two_files, tiny_gem, tmp_path: Path
) -> None:
    folder = two_files(tmp_path / "docs")
    other = two_files(tmp_path / "other")
    with RagStore(tmp_path / "q") as store:
        index_paths(tiny_gem, store, "c", [folder, other], **KW)
        before = store.sources("c")
        (other / "a.txt").unlink()  # gone, but ``other`` is not indexed this time
        (folder / "b.txt").write_bytes(b"\x00binary now")  # there, but unreadable
        with pytest.warns(UserWarning, match="b.txt: looks like a binary"):
            report = index_paths(tiny_gem, store, "c", [folder], **KW)
        assert report.skipped == [str(folder / "b.txt")] and report.gone_files == []
        assert store.sources("c") == before  # nothing lost


def test_an_emptied_file_is_reported_and_loses_its_passages(
    two_files, tiny_gem, tmp_path: Path
) -> None:
    folder = two_files(tmp_path / "docs")
    emptied = folder / "b.txt"
    with RagStore(tmp_path / "q") as store:
        index_paths(tiny_gem, store, "c", [folder], **KW)
        n_b = store.sources("c")[str(emptied.resolve())]
        emptied.write_text("  \n")
        report = index_paths(tiny_gem, store, "c", [folder], **KW)
        assert report.empty == [str(emptied)] and report.removed == n_b and report.files == 1
        assert list(store.sources("c")) == [str((folder / "a.txt").resolve())]


def test_missing_paths_raise_unless_skipped(two_files, tiny_gem, tmp_path: Path) -> None:
    folder = two_files(tmp_path / "docs")
    typo = tmp_path / "dcos"
    with pytest.raises(MissingPaths, match=f"no such file or folder: {typo}, {typo}.txt"):
        read_inputs([folder, typo, f"{typo}.txt"])
    inputs = read_inputs([folder, typo, folder / "a.txt"], skip_missing=True)
    assert inputs.missing == [str(typo)] and inputs.folders == [str(folder.resolve())]
    assert sorted(f.path.name for f in inputs.files) == ["a.txt", "b.txt"]  # a.txt read once
    with RagStore(tmp_path / "q") as store:
        with pytest.raises(MissingPaths):
            index_paths(tiny_gem, store, "c", [typo], **KW)
        assert not store.exists("c")
        report = index_paths(tiny_gem, store, "c", [folder, typo], skip_missing=True, **KW)
        assert report.missing == [str(typo)] and report.files == 2
