from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gemlm.rag.ask import RagEngine
from gemlm.rag.indexing import index_paths
from gemlm.rag.store import (
    EmptyCollection,
    MissingCollection,
    ModelMismatch,
    RagError,
    RagStore,
    default_edge_path,
    default_qdrant_path,
    model_identity,
)

DIM = 16
IDENT = {"model": "m", "dimension": DIM, "embedding": {"readout": "gem"}}


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def ids_for(n: int) -> list[str]:
    return [f"00000000-0000-5000-8000-{i:012d}" for i in range(n)]


def fill(store: RagStore, n: int = 200, collection: str = "c") -> np.ndarray:
    """``n`` seeded unit vectors in three sources, written in two batches."""
    vecs, ids = unit_vectors(n), ids_for(n)
    store.ensure(collection, IDENT, extra={"chunk_tokens": 32})
    half = n // 2
    for lo, hi in ((0, half), (half, n)):
        payloads = [{"source": f"s{i % 3}", "text": f"passage {i}"} for i in range(lo, hi)]
        store.upsert(collection, ids[lo:hi], vecs[lo:hi], payloads)
    return vecs


@pytest.fixture(params=["edge", "local"])
def engine(request) -> str:
    return request.param


def test_default_paths_are_under_gemlm_home(tmp_path: Path) -> None:
    home = tmp_path / "gemlm_home"
    assert default_edge_path() == home / "qdrant-edge"
    assert default_qdrant_path() == home / "qdrant"
    with RagStore() as store:
        assert Path(store.location) == default_edge_path() and store.engine == "edge"
    with RagStore(engine="local") as store:
        assert Path(store.location) == default_qdrant_path() and store.engine == "local"
    with pytest.raises(RagError, match="unknown vector store engine 'faiss'"):
        RagStore(tmp_path / "x", engine="faiss")


def test_nearest_neighbours_match_exact_search(engine: str, tmp_path: Path) -> None:
    with RagStore(tmp_path / "q", engine=engine) as store:
        vecs = fill(store)
        assert store.count("c") == 200
        queries = unit_vectors(5, seed=1)
        for q in queries:
            want = np.argsort(-(vecs @ q))[:5]
            hits = store.search("c", q, top_k=5)
            assert [h.id for h in hits] == [ids_for(200)[i] for i in want]
            np.testing.assert_allclose([h.score for h in hits], (vecs @ q)[want], atol=1e-5)
        top = store.search("c", vecs[7], top_k=1)[0]
        assert top.payload == {"source": "s1", "text": "passage 7"} and top.score > 0.999


def test_ids_scroll_delete_and_reopen(engine: str, tmp_path: Path) -> None:
    ids = ids_for(200)
    with RagStore(tmp_path / "q", engine=engine) as store:
        vecs = fill(store)
        asked = ids[190:] + ["00000000-0000-5000-8000-999999999999"]
        assert store.existing_ids("c", asked) == set(ids[190:])
        s1 = store.ids_for_source("c", "s1")
        assert s1 == {ids[i] for i in range(200) if i % 3 == 1}
        store.delete("c", s1)
        store.delete("c", [])  # nothing to do
        assert store.count("c") == 200 - len(s1) and store.ids_for_source("c", "s1") == set()
        store.optimize("c")  # Edge: vacuum/index if due; qdrant-client: nothing to do
        before = [h.id for h in store.search("c", vecs[3], top_k=4)]
    with RagStore(tmp_path / "q", engine=engine) as store:
        assert store.count("c") == 200 - len(s1)
        assert store.identity("c") == {**IDENT, "chunk_tokens": 32}
        assert [h.id for h in store.search("c", vecs[3], top_k=4)] == before
        assert not store.ensure("c", IDENT)  # exists: checked, not created
        with pytest.raises(ModelMismatch, match="dimension: stored 16, given 8"):
            store.ensure("c", {**IDENT, "dimension": 8})


def test_missing_collection_lists_existing_ones(engine: str, tmp_path: Path) -> None:
    with RagStore(tmp_path / "q", engine=engine) as store:
        assert store.ensure("b", IDENT) and store.ensure("a", IDENT)
        with pytest.raises(MissingCollection, match=r"no collection 'nope' .*existing: a, b\)"):
            store.identity("nope")
        with pytest.raises(EmptyCollection, match="'a' is empty"):
            store.search("a", unit_vectors(1)[0], top_k=3)
        with pytest.raises(RagError, match="top_k must be >= 1"):
            store.search("a", unit_vectors(1)[0], top_k=0)
        with pytest.raises(RagError, match="expected 2 vectors"):
            store.upsert("a", ids_for(2), unit_vectors(3), [{}, {}])


def test_engines_refuse_each_others_folders(tmp_path: Path) -> None:
    with RagStore(tmp_path / "edge"):
        pass
    with pytest.raises(RagError, match="is a Qdrant Edge store.*--store edge"):
        RagStore(tmp_path / "edge", engine="local")
    with RagStore(tmp_path / "local", engine="local") as store:
        store.ensure("c", IDENT)
    with pytest.raises(RagError, match="qdrant-client local-mode folder.*--store local"):
        RagStore(tmp_path / "local")


def test_missing_collection_points_to_an_old_local_mode_one() -> None:
    with RagStore(engine="local") as store:  # the default folder before Qdrant Edge
        store.ensure("kb", IDENT)
    with RagStore() as store, pytest.raises(MissingCollection, match="with `--store local`"):
        store.identity("kb")


def test_missing_and_empty_collections(tiny_gem, tmp_path: Path) -> None:
    with RagStore(tmp_path / "q") as store:
        with pytest.raises(MissingCollection, match="no collection 'nope'"):
            RagEngine(tiny_gem, store, "nope", model_id="tiny")
        store.ensure("empty", model_identity(tiny_gem, "tiny"))
        engine = RagEngine(tiny_gem, store, "empty", model_id="tiny")
        with pytest.raises(EmptyCollection, match="'empty' is empty"):
            engine.ask("what is the capital of france", max_new_tokens=2)


def test_model_and_dimension_mismatch(tiny_gem, docs: Path, tmp_path: Path) -> None:
    with RagStore(tmp_path / "q") as store:
        index_paths(tiny_gem, store, "c", [docs], model_id="tiny", chunk_tokens=32, overlap=4)
        with pytest.raises(ModelMismatch, match="model: stored 'tiny', given 'other'"):
            RagEngine(tiny_gem, store, "c", model_id="other")
        with pytest.raises(ModelMismatch):
            index_paths(tiny_gem, store, "c", [docs], model_id="other")
        wide = {**model_identity(tiny_gem, "tiny"), "dimension": 64}
        store.ensure("wide", wide)
        with pytest.raises(ModelMismatch, match="dimension: stored 64, given 32"):
            RagEngine(tiny_gem, store, "wide", model_id="tiny")
        with pytest.raises(ModelMismatch, match="dimension"):
            RagEngine(tiny_gem, store, "wide")  # no model id: the rest is still checked


def test_sources_remove_source_and_drop(engine: str, tmp_path: Path) -> None:
    with RagStore(tmp_path / "q", engine=engine) as store:
        fill(store)
        fill(store, n=20, collection="other")
        assert store.sources("c") == {"s0": 67, "s1": 67, "s2": 66}
        assert store.remove_source("c", "s1") == 67 and store.remove_source("c", "s1") == 0
        assert store.sources("c") == {"s0": 67, "s2": 66}  # Edge's zero count left out
        assert store.count("c") == 133
        store.drop("c")
        assert not store.exists("c") and store.collections() == ["other"]
        with pytest.raises(MissingCollection, match=r"no collection 'c' .*existing: other\)"):
            store.drop("c")
        with pytest.raises(MissingCollection):
            store.sources("c")
    with RagStore(tmp_path / "q", engine=engine) as store:  # still gone after a reopen
        assert store.collections() == ["other"] and store.count("other") == 20
        store.ensure("c", IDENT)  # the name can be used again
        assert store.count("c") == 0 and store.sources("c") == {}
