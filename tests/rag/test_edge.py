"""The Qdrant Edge engine itself: HNSW build, layout, durability, locking, bad folders."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gemlm.rag.edge import IDENTITY_FILE, EdgeBackend
from gemlm.rag.store import RagStore
from gemlm.rag.types import EDGE_MARKER, META_KEY, CollectionBusy, RagError

from .test_store import IDENT, fill, ids_for, unit_vectors

ROOT = Path(__file__).resolve().parents[2]


def run_child(code: str) -> str:
    """Run ``code`` in a fresh interpreter (another process); its stdout + stderr."""
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    return res.stdout + res.stderr


def test_optimize_builds_hnsw_and_reopen_keeps_it(tmp_path: Path) -> None:
    backend = EdgeBackend(tmp_path / "q", indexing_threshold_kb=16)  # 16 KB: 256 16-d vectors
    backend.create("c", 16, IDENT)
    vecs, ids = unit_vectors(1000), ids_for(1000)
    for lo in range(0, 1000, 250):
        payloads = [{"source": "s"}] * 250
        backend.upsert("c", ids[lo : lo + 250], vecs[lo : lo + 250], payloads)
    assert backend.info("c")["indexed_vectors"] == 0  # no background optimizer in Edge
    assert backend.optimize("c") is True
    assert backend.info("c")["indexed_vectors"] == 1000
    assert backend.optimize("c") is False  # nothing left to plan
    assert backend.search("c", vecs[123], 1)[0].id == ids[123]
    backend.close()
    reopened = EdgeBackend(tmp_path / "q")
    assert reopened.info("c") | {"segments": 0} == {
        "segments": 0,
        "points": 1000,
        "indexed_vectors": 1000,
    }
    assert reopened.search("c", vecs[321], 1)[0].id == ids[321]
    reopened.close()


def test_layout_one_shard_folder_per_collection(tmp_path: Path) -> None:
    with RagStore(tmp_path / "q") as store:
        fill(store, n=20, collection="kb")
        store.ensure("other", IDENT)
    root = tmp_path / "q"
    assert sorted(p.name for p in root.iterdir()) == [
        EDGE_MARKER,
        "kb",
        "other",
    ]  # no temp leftovers
    assert (root / "kb/edge_config.json").is_file() and (root / "kb/segments").is_dir()
    stored = json.loads((root / "kb" / IDENTITY_FILE).read_text())
    assert stored == {META_KEY: {**IDENT, "chunk_tokens": 32}}
    with RagStore(root) as store, pytest.raises(RagError, match="invalid collection name"):
        store.ensure("../escape", IDENT)


def test_foreign_folders_are_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RagError, match="file is a file"):
        RagStore(tmp_path / "file")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/notes.txt").write_text("mine")
    with pytest.raises(RagError, match=r"docs holds other files .*new or empty folder"):
        RagStore(tmp_path / "docs")
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["notes.txt"]  # left untouched
    with RagStore(tmp_path / "q") as store:
        store.ensure("c", IDENT)
    with pytest.raises(RagError, match="is a single Qdrant Edge shard"):
        RagStore(tmp_path / "q/c")


def test_damaged_collections_are_clear_errors(tmp_path: Path) -> None:
    root = tmp_path / "q"
    with RagStore(root) as store:
        fill(store, n=20, collection="broken")
        fill(store, n=20, collection="noident")
    for version in (root / "broken/segments").glob("*/version.info"):
        version.write_bytes(b"\x00garbage")
    (root / "noident" / IDENTITY_FILE).write_text("{not json")
    (root / "junk").mkdir()
    with RagStore(root) as store:
        with pytest.raises(RagError, match=rf"cannot open collection 'broken' at {root}/broken"):
            store.identity("broken")
        with pytest.raises(RagError, match="cannot read the collection identity"):
            store.identity("noident")
        with pytest.raises(RagError, match=r"junk is not a Qdrant Edge collection"):
            store.identity("junk")
    assert sorted(p.name for p in (root / "junk").iterdir()) == []  # Edge wrote nothing there


def test_a_collection_open_elsewhere_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "q"
    with RagStore(root) as store:
        fill(store, n=20)
        with RagStore(root) as second, pytest.raises(RagError, match="already open"):
            second.identity("c")
        out = run_child(
            f"""
            from gemlm.rag.store import RagError, RagStore
            try:
                RagStore({str(root)!r}).count("c")
            except RagError as exc:
                print("RagError:", exc)
            """
        )
        assert "RagError: collection 'c'" in out and "already open in another process" in out
        assert "Traceback" not in out
    code = f"from gemlm.rag.store import RagStore; print(RagStore({str(root)!r}).count('c'))"
    assert run_child(code).strip() == "20"  # free again once closed


def test_a_written_batch_survives_a_killed_process(tmp_path: Path) -> None:
    root = tmp_path / "q"
    out = run_child(
        f"""
        import os
        import numpy as np
        from gemlm.rag.store import RagStore
        store = RagStore({str(root)!r})
        store.ensure("c", {IDENT!r})
        ids = {ids_for(40)!r}
        store.upsert("c", ids, np.eye(40, 16, dtype=np.float32) + 0.1, [{{}}] * 40)
        print("written", flush=True)
        os._exit(1)  # no close(), no interpreter shutdown
        """
    )
    assert "written" in out, out
    with RagStore(root) as store:
        assert store.count("c") == 40 and store.identity("c") == IDENT
        assert store.existing_ids("c", ids_for(40)) == set(ids_for(40))
        assert store.search("c", unit_vectors(1)[0], top_k=3)


def test_drop_refuses_a_collection_open_elsewhere_and_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "q"
    with RagStore(root) as store:
        fill(store, n=20)
        with RagStore(root) as second, pytest.raises(CollectionBusy, match="already open"):
            second.drop("c")
        assert store.count("c") == 20  # untouched, still usable
        store.drop("c")  # its own open shard is closed first
        assert sorted(p.name for p in root.iterdir()) == [EDGE_MARKER]  # no hidden leftovers


def test_drop_deletes_a_damaged_collection_but_not_a_foreign_folder(tmp_path: Path) -> None:
    root = tmp_path / "q"
    with RagStore(root) as store:
        fill(store, n=20, collection="broken")
    for version in (root / "broken/segments").glob("*/version.info"):
        version.write_bytes(b"\x00garbage")
    (root / "junk").mkdir()
    (root / "junk/keep.txt").write_text("mine")
    with RagStore(root) as store:
        store.drop("broken")
        assert not (root / "broken").exists()
        with pytest.raises(RagError, match="junk is not a Qdrant Edge collection.*left as is"):
            store.drop("junk")
    assert (root / "junk/keep.txt").read_text() == "mine"
