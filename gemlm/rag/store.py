"""Qdrant wrapper: one collection per corpus, checked against the model that queries it.

Local on-disk mode (``QdrantClient(path=...)``, default ``$GEMLM_HOME/qdrant``) needs no server;
``url=`` talks to a Qdrant server or cluster. Every collection carries collection-level metadata
``{"gemlm": identity}`` (model id, embedding dimension, embedding settings), written when the
collection is created and compared on every open, so vectors from two models never mix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..sources import gemlm_home

META_KEY = "gemlm"
IDENTITY_KEYS = ("model", "dimension", "embedding")  # compared on open ("embedding": settings)


class RagError(ValueError):
    """A user-facing RAG problem (missing/empty collection, model mismatch, bad question)."""


class MissingCollection(RagError):
    pass


class EmptyCollection(RagError):
    pass


class ModelMismatch(RagError):
    pass


@dataclass
class Hit:
    """One retrieved passage with its cosine score (payload as stored)."""

    id: str
    score: float
    payload: dict[str, Any]


def default_qdrant_path() -> Path:
    return gemlm_home() / "qdrant"


def model_identity(model: Any, model_id: str) -> dict[str, Any]:
    """What a collection records about the model whose vectors it holds."""
    cfg = model.config
    return {
        "model": model_id,
        "dimension": int(model.get_embedding_dimension()),
        "embedding": {
            "special_tokens": list(cfg.special_tokens),
            "readout": cfg.readout,
            "document_prompt": cfg.prompts.get("document", ""),
            "readout_suffix": cfg.readout_suffix,
        },
    }


def model_id_for(name: str) -> str:
    """A stable id for a model argument: the absolute path of a local folder/file, else the name."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


class RagStore:
    """A Qdrant client (local folder or server) plus collection-level identity checks."""

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        from qdrant_client import QdrantClient

        if url:
            self.client = QdrantClient(url=url, api_key=api_key or os.environ.get("QDRANT_API_KEY"))
            self.location = url
        else:
            folder = Path(path) if path is not None else default_qdrant_path()
            folder.mkdir(parents=True, exist_ok=True)
            self.client = QdrantClient(path=str(folder))
            self.location = str(folder)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RagStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ collections
    def exists(self, collection: str) -> bool:
        return self.client.collection_exists(collection)

    def identity(self, collection: str) -> dict[str, Any]:
        """The identity stored with ``collection``; MissingCollection if there is none."""
        if not self.exists(collection):
            names = sorted(c.name for c in self.client.get_collections().collections)
            raise MissingCollection(
                f"no collection {collection!r} at {self.location} "
                f"(existing: {', '.join(names) or 'none'}); build it with `gemlm rag index`"
            )
        info = self.client.get_collection(collection)
        meta = (info.config.metadata or {}).get(META_KEY)
        if not isinstance(meta, dict):
            raise ModelMismatch(f"collection {collection!r} was not built by gemlm (no metadata)")
        return meta

    def ensure(self, collection: str, identity: dict[str, Any], extra: dict | None = None) -> bool:
        """Create ``collection`` for ``identity``, or check an existing one; True if created."""
        from qdrant_client import models

        if self.exists(collection):
            self.check(collection, identity)
            return False
        self.client.create_collection(
            collection,
            vectors_config=models.VectorParams(
                size=identity["dimension"], distance=models.Distance.COSINE
            ),
            metadata={META_KEY: {**identity, **(extra or {})}},
        )
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
        return self.client.count(collection, exact=True).count

    # ------------------------------------------------------------------ points
    def existing_ids(self, collection: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` are already stored (used to skip work on a re-run)."""
        found: set[str] = set()
        for i in range(0, len(ids), 256):
            points = self.client.retrieve(
                collection, ids[i : i + 256], with_payload=False, with_vectors=False
            )
            found.update(str(p.id) for p in points)
        return found

    def upsert(
        self, collection: str, ids: list[str], vectors: Any, payloads: list[dict[str, Any]]
    ) -> None:
        """Write one batch and wait for it: what was written survives an interruption."""
        from qdrant_client import models

        points = [
            models.PointStruct(id=i, vector=[float(x) for x in v], payload=p)
            for i, v, p in zip(ids, vectors, payloads, strict=True)
        ]
        self.client.upsert(collection, points=points, wait=True)

    def ids_for_source(self, collection: str, source: str) -> set[str]:
        from qdrant_client import models

        flt = models.Filter(
            must=[models.FieldCondition(key="source", match=models.MatchValue(value=source))]
        )
        out: set[str] = set()
        offset = None
        while True:
            points, offset = self.client.scroll(
                collection, scroll_filter=flt, limit=512, offset=offset, with_payload=False
            )
            out.update(str(p.id) for p in points)
            if offset is None:
                return out

    def delete(self, collection: str, ids: Iterable[str]) -> None:
        from qdrant_client import models

        ids = list(ids)
        if ids:
            self.client.delete(
                collection, points_selector=models.PointIdsList(points=ids), wait=True
            )

    def search(self, collection: str, vector: Any, top_k: int) -> list[Hit]:
        """The ``top_k`` nearest passages by cosine; EmptyCollection if nothing is indexed."""
        if top_k < 1:
            raise RagError(f"top_k must be >= 1, got {top_k}")
        if self.count(collection) == 0:
            raise EmptyCollection(
                f"collection {collection!r} is empty; add documents with `gemlm rag index`"
            )
        res = self.client.query_points(
            collection, query=[float(x) for x in vector], limit=top_k, with_payload=True
        )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in res.points]
