from __future__ import annotations

from pathlib import Path

import pytest

from gemlm.rag.ask import RagEngine
from gemlm.rag.indexing import index_paths
from gemlm.rag.store import (
    EmptyCollection,
    MissingCollection,
    ModelMismatch,
    RagStore,
    default_qdrant_path,
    model_identity,
)


def test_default_path_is_under_gemlm_home(tmp_path: Path) -> None:
    assert default_qdrant_path() == tmp_path / "gemlm_home" / "qdrant"
    with RagStore() as store:
        assert Path(store.location) == default_qdrant_path()


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
