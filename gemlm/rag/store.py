"""Vector store for RAG: one collection per corpus, checked against the model that queries it.

``RagStore`` is the one interface the rest of gemlm uses; it delegates to an engine:

* ``edge`` (default): Qdrant Edge, Qdrant's own engine in-process (HNSW, write-ahead log, on
  disk; ``gemlm/rag/edge.py``), one shard folder per collection under
  ``$GEMLM_HOME/qdrant-edge``. No server, and collections of millions of passages stay fast.
* ``local``: ``qdrant-client``'s local mode (``$GEMLM_HOME/qdrant``), pure Python with exact
  numpy search; kept for folders built with it and as a benchmark reference.
* ``url=``: a Qdrant server or cluster through ``qdrant-client``.

Each engine implements ``Backend`` (``gemlm/rag/types.py``, with the records and errors the
engines and this module share); this module imports the engines, never the reverse.

Every collection records ``{"gemlm": identity}`` (model id, embedding dimension, embedding
settings) when it is created; it is compared on every open, so vectors from two models never mix.
Every passage records its ``source`` (the file it came from): ``sources`` counts passages per
source, ``remove_source`` deletes one source's passages and ``drop`` a whole collection.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..sources import gemlm_home
from .types import (
    IDENTITY_KEYS,
    Backend,
    EmptyCollection,
    Hit,
    MissingCollection,
    ModelMismatch,
    RagError,
)

if TYPE_CHECKING:
    from gemlm.model import GEMModel

ENGINES = ("edge", "local")


def default_qdrant_path() -> Path:
    """The qdrant-client local-mode folder (``engine="local"``)."""
    return gemlm_home() / "qdrant"


def default_edge_path() -> Path:
    """The Qdrant Edge store folder (the default engine)."""
    return gemlm_home() / "qdrant-edge"


def model_identity(model: GEMModel, model_id: str) -> dict[str, Any]:
    """What a collection records about the model whose vectors it holds: its embedding format
    (:meth:`gemlm.embedding_format.EmbeddingFormat.identity`) and readout."""
    fmt = model.config.embedding_format.identity()
    return {
        "model": model_id,
        "dimension": int(model.get_embedding_dimension()),
        "embedding": {
            "special_tokens": fmt.pop("special_tokens"),
            "readout": model.config.readout,
            **fmt,  # document_prompt, readout_suffix
        },
    }


def model_id_for(name: str) -> str:
    """A stable id for a model argument: the absolute path of a local folder/file, else the name."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def open_backend(
    path: str | os.PathLike | None, url: str | None, api_key: str | None, engine: str
) -> Backend:
    """The engine for a folder (``edge``/``local``) or a server URL (``engine`` ignored)."""
    if url:
        from .client import ClientBackend

        return ClientBackend(url=url, api_key=api_key or os.environ.get("QDRANT_API_KEY"))
    if engine == "edge":
        from .edge import EdgeBackend

        return EdgeBackend(Path(path) if path is not None else default_edge_path())
    if engine == "local":
        from .client import ClientBackend

        return ClientBackend(path=Path(path) if path is not None else default_qdrant_path())
    raise RagError(f"unknown vector store engine {engine!r}; use one of: {', '.join(ENGINES)}")


def local_mode_hint(collection: str) -> str:
    """A pointer to a same-named collection in the default qdrant-client local-mode folder.

    Collections built before Qdrant Edge became the default live there; without this a user
    would only see "no collection" after upgrading.
    """
    folder = default_qdrant_path()
    if (folder / "collection" / collection).is_dir():
        return (
            f"; a qdrant-client local-mode collection {collection!r} exists at {folder}: "
            "open it with `--store local`"
        )
    return ""


def as_matrix(vectors: Any, rows: int) -> np.ndarray:
    """``vectors`` as a float32 (rows, dim) array; a clear error if the count does not match."""
    out = np.asarray(vectors, dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != rows:
        raise RagError(f"expected {rows} vectors, got an array of shape {out.shape}")
    return out


class RagStore:
    """A vector store folder (Qdrant Edge by default) or server, plus collection identity checks.

    ``RagStore(path)`` opens a Qdrant Edge store folder, ``RagStore(path, engine="local")`` a
    qdrant-client local-mode folder, ``RagStore(url=...)`` a Qdrant server.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        url: str | None = None,
        api_key: str | None = None,
        engine: str = "edge",
    ) -> None:
        self.backend = open_backend(path, url, api_key, engine)
        self.engine = "server" if url else engine
        self.location = self.backend.location

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> RagStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ collections
    def exists(self, collection: str) -> bool:
        return self.backend.exists(collection)

    def collections(self) -> list[str]:
        """The collection names in this folder or server, sorted."""
        return self.backend.collections()

    def missing(self, collection: str) -> MissingCollection:
        """The error for a collection that is not here, naming those that are."""
        names = self.backend.collections()
        hint = local_mode_hint(collection) if self.engine == "edge" else ""
        return MissingCollection(
            f"no collection {collection!r} at {self.location} "
            f"(existing: {', '.join(names) or 'none'}); build it with `gemlm rag index`" + hint
        )

    def identity(self, collection: str) -> dict[str, Any]:
        """The identity stored with ``collection``; MissingCollection if there is none."""
        if not self.exists(collection):
            raise self.missing(collection)
        meta = self.backend.metadata(collection)
        if not isinstance(meta, dict):
            raise ModelMismatch(f"collection {collection!r} was not built by gemlm (no metadata)")
        return meta

    def ensure(self, collection: str, identity: dict[str, Any], extra: dict | None = None) -> bool:
        """Create ``collection`` for ``identity``, or check an existing one; True if created."""
        if self.exists(collection):
            self.check(collection, identity)
            return False
        self.backend.create(collection, int(identity["dimension"]), {**identity, **(extra or {})})
        return True

    def check(self, collection: str, identity: dict[str, Any]) -> dict[str, Any]:
        """Raise ModelMismatch unless ``collection`` was built with the same model settings."""
        stored = self.identity(collection)
        diffs = [k for k in IDENTITY_KEYS if stored.get(k) != identity.get(k)]
        if diffs:
            lines = "; ".join(
                f"{k}: stored {stored.get(k)!r}, given {identity.get(k)!r}" for k in diffs
            )
            raise ModelMismatch(
                f"collection {collection!r} was built with a different model or embedding "
                f"settings ({lines}); query it with the model it was built with, or re-index "
                "into a new collection"
            )
        return stored

    def count(self, collection: str) -> int:
        return self.backend.count(collection)

    def sources(self, collection: str) -> dict[str, int]:
        """Passages per source (the file each came from), by source; MissingCollection if none."""
        self.identity(collection)
        return dict(sorted(self.backend.sources(collection).items()))

    def drop(self, collection: str) -> None:
        """Delete ``collection`` with all its passages; MissingCollection if there is none."""
        if not self.exists(collection):
            raise self.missing(collection)
        self.backend.drop(collection)

    def optimize(self, collection: str) -> bool:
        """Build the search index for what was written; True if anything was rebuilt.

        Qdrant Edge has no background optimizer: new points sit in an unindexed segment
        (searched exhaustively) until this runs, which builds HNSW for segments above the
        indexing threshold (10 MB of vectors) and vacuums deleted points. ``index_paths`` calls
        it after each run. A no-op for qdrant-client (a server optimizes by itself; local mode
        always searches exhaustively).
        """
        return self.backend.optimize(collection)

    # ------------------------------------------------------------------ points
    def existing_ids(self, collection: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` are already stored (used to skip work on a re-run)."""
        return self.backend.existing_ids(collection, list(ids))

    def upsert(
        self, collection: str, ids: list[str], vectors: Any, payloads: list[dict[str, Any]]
    ) -> None:
        """Write one batch and wait for it: what was written survives an interruption."""
        if len(payloads) != len(ids):
            raise RagError(f"{len(ids)} ids but {len(payloads)} payloads")
        if ids:
            self.backend.upsert(collection, list(ids), as_matrix(vectors, len(ids)), payloads)

    def ids_for_source(self, collection: str, source: str) -> set[str]:
        return self.backend.ids_for_source(collection, source)

    def remove_source(self, collection: str, source: str) -> int:
        """Delete every passage of ``source``; how many there were."""
        return self.backend.remove_source(collection, source)

    def delete(self, collection: str, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self.backend.delete(collection, ids)

    def search(self, collection: str, vector: Any, top_k: int) -> list[Hit]:
        """The ``top_k`` nearest passages by cosine; EmptyCollection if nothing is indexed."""
        if top_k < 1:
            raise RagError(f"top_k must be >= 1, got {top_k}")
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        hits = self.backend.search(collection, query, top_k)
        if not hits and self.count(collection) == 0:  # counted only when nothing came back
            raise EmptyCollection(
                f"collection {collection!r} is empty; add documents with `gemlm rag index`"
            )
        return hits
