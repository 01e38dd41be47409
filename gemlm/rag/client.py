"""The qdrant-client engine: a Qdrant server (``url=``) or qdrant-client's local mode (a folder).

Local mode keeps every point in memory and searches exhaustively with numpy; it is kept for
folders built with it (``--store local``) and as the reference in ``benchmarks/vector_store.py``.
The gemlm identity is stored as collection-level metadata ``{"gemlm": identity}``.

On a server, a collection gets a keyword index on ``source`` when it is created: filtering by
source (``ids_for_source``, ``remove_source``) uses it, and ``sources`` counts passages per source
with one exact facet instead of reading every point; collections created before that (no index)
are counted with a scroll reading only ``source``. Local mode ignores payload indexes
(qdrant-client warns that they have no effect there), so none is made and ``sources`` scrolls.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from .types import EDGE_MARKER, FACET_ALL, META_KEY, SOURCE_KEY, Hit, RagError

PAGE = 1024  # points per scroll call


def local_folder(folder: Path) -> Path:
    """Check ``folder`` can be a local-mode folder; a Qdrant Edge store is a clear error."""
    if folder.exists() and not folder.is_dir():
        raise RagError(f"{folder} is a file, not a Qdrant folder")
    if (folder / EDGE_MARKER).exists():
        raise RagError(
            f"{folder} is a Qdrant Edge store, not a qdrant-client local-mode folder: "
            "open it with `--store edge` (the default)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class ClientBackend:
    """``QdrantClient`` on a server URL or a local-mode folder."""

    def __init__(
        self, path: Path | None = None, url: str | None = None, api_key: str | None = None
    ) -> None:
        self.server = bool(url)  # a server has payload indexes; local mode ignores them
        if url:
            self.client = QdrantClient(url=url, api_key=api_key)
            self.location = url
            return
        if path is None:
            raise TypeError("ClientBackend needs a url or a local folder path")
        folder = local_folder(path)
        try:
            self.client = QdrantClient(path=str(folder))
        except RuntimeError as exc:  # the folder is locked by another process
            raise RagError(str(exc)) from exc
        self.location = str(folder)

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ collections
    def collections(self) -> list[str]:
        return sorted(c.name for c in self.client.get_collections().collections)

    def exists(self, collection: str) -> bool:
        return self.client.collection_exists(collection)

    def metadata(self, collection: str) -> Any:
        info = self.client.get_collection(collection)
        return (info.config.metadata or {}).get(META_KEY)

    def create(self, collection: str, dimension: int, meta: dict[str, Any]) -> None:
        self.client.create_collection(
            collection,
            vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
            metadata={META_KEY: meta},
        )
        if self.server:
            self.client.create_payload_index(
                collection, SOURCE_KEY, field_schema=models.PayloadSchemaType.KEYWORD, wait=True
            )

    def drop(self, collection: str) -> None:
        self.client.delete_collection(collection)

    def count(self, collection: str) -> int:
        return self.client.count(collection, exact=True).count

    def existing_ids(self, collection: str, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), 256):
            points = self.client.retrieve(
                collection, ids[i : i + 256], with_payload=False, with_vectors=False
            )
            found.update(str(p.id) for p in points)
        return found

    def upsert(
        self, collection: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None:
        points = [
            models.PointStruct(id=i, vector=v.tolist(), payload=p)
            for i, v, p in zip(ids, vectors, payloads, strict=True)
        ]
        self.client.upsert(collection, points=points, wait=True)

    def ids_for_source(self, collection: str, source: str) -> set[str]:
        flt = source_filter(source)
        out: set[str] = set()
        offset = None
        while True:
            points, offset = self.client.scroll(
                collection, scroll_filter=flt, limit=PAGE, offset=offset, with_payload=False
            )
            out.update(str(p.id) for p in points)
            if offset is None:
                return out

    def sources(self, collection: str) -> dict[str, int]:
        """Passages per source: one exact facet on the ``source`` index where there is one, else
        a scroll reading only that field."""
        if self.source_indexed(collection):
            res = self.client.facet(collection, SOURCE_KEY, limit=FACET_ALL, exact=True)
            return {str(h.value): int(h.count) for h in res.hits if h.count > 0}
        counts: Counter[str] = Counter()
        offset = None
        while True:
            points, offset = self.client.scroll(
                collection, limit=PAGE, offset=offset, with_payload=[SOURCE_KEY], with_vectors=False
            )
            counts.update(str((p.payload or {}).get(SOURCE_KEY, "")) for p in points)
            if offset is None:
                return dict(counts)

    def source_indexed(self, collection: str) -> bool:
        """True if ``collection`` has a keyword index on ``source`` (a server's, made by
        ``create``; local mode reports none)."""
        if not self.server:
            return False
        info = (self.client.get_collection(collection).payload_schema or {}).get(SOURCE_KEY)
        return info is not None and info.data_type == models.PayloadSchemaType.KEYWORD

    def remove_source(self, collection: str, source: str) -> int:
        flt = source_filter(source)
        n = self.client.count(collection, count_filter=flt, exact=True).count
        if n:
            selector = models.FilterSelector(filter=flt)
            self.client.delete(collection, points_selector=selector, wait=True)
        return n

    def delete(self, collection: str, ids: list[str]) -> None:
        self.client.delete(collection, points_selector=models.PointIdsList(points=ids), wait=True)

    def search(self, collection: str, vector: np.ndarray, top_k: int) -> list[Hit]:
        res = self.client.query_points(
            collection, query=vector.tolist(), limit=top_k, with_payload=True
        )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in res.points]

    def optimize(self, collection: str) -> bool:
        """Nothing to do: a server optimizes in the background, local mode has no index."""
        return False


def source_filter(source: str) -> models.Filter:
    """Points whose ``source`` is ``source``."""
    match = models.MatchValue(value=source)
    return models.Filter(must=[models.FieldCondition(key=SOURCE_KEY, match=match)])
