"""The Qdrant Edge engine: Qdrant's storage and HNSW in-process, one shard folder per collection.

Layout of a store folder (default ``$GEMLM_HOME/qdrant-edge``)::

    .gemlm-store.json          marks the folder as a gemlm Qdrant Edge store
    <collection>/              one Edge shard: edge_config.json, wal/, segments/ ...
    <collection>/gemlm.json    ... plus the collection identity {"gemlm": {...}}

What this relies on (qdrant-edge-py 0.9, checked by ``tests/rag/test_edge.py``):

* ``EdgeShard.create(path, config)`` makes a shard; ``EdgeShard.load(path)`` reopens it from its
  folder alone (the config is persisted in ``edge_config.json``); ``close()`` flushes and
  releases it. A shard is a single collection and has no collection-level metadata, hence
  ``gemlm.json``. A collection is built in a hidden temporary folder and renamed into place, so
  it is either complete or absent.
* ``update()`` writes the write-ahead log, then the segments; ``flush()`` syncs both to disk.
  Every upsert and delete here is flushed before it returns, so a finished batch survives a
  killed process and a power cut alike.
* A shard holds a lock on its WAL while open: a second ``load`` of the same folder, from another
  process or this one, fails (``WouldBlock``); that is reported as "already open".
* There is no background optimizer. Points land in an appendable segment that is searched
  exhaustively until ``optimize()`` runs (blocking, in-process): it builds HNSW for segments over
  the indexing threshold (default 10,000 KB of vectors, ~4,400 at dimension 576; smaller
  collections stay exhaustive, which is exact and fast at that size) and vacuums deletions.
* Engine errors are plain ``Exception`` with a message (damaged files gave no panics); they are
  re-raised as ``RagError`` naming the collection folder.
* Point ids are UUID strings (returned as ``uuid.UUID``); payloads are JSON-like dicts. A keyword
  index on ``source`` keeps ``ids_for_source`` cheap on large collections (no HNSW links for it)
  and lets ``sources`` count passages per source with one exact facet (deleted points count 0
  until ``optimize`` vacuums them; ``sources`` leaves them out); ``remove_source`` is one
  filtered delete.
* ``drop`` deletes a collection: it takes the shard's lock first (a collection open in another
  process is refused, as for any open), releases it, renames the folder to a hidden name (the
  collection is gone at once) and deletes that.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from ..atomic import write_json_atomic
from .types import (
    EDGE_MARKER,
    FACET_ALL,
    META_KEY,
    SOURCE_KEY,
    CollectionBusy,
    Hit,
    MissingCollection,
    RagError,
)

IDENTITY_FILE = "gemlm.json"
SHARD_CONFIG = "edge_config.json"
STORE_FORMAT = 1
PAGE = 1024  # ids per retrieve / scroll call


def check_name(collection: str) -> str:
    """Collections are folder names: refuse names that could leave or hide in the store."""
    if (
        not isinstance(collection, str)
        or not collection
        or len(collection) > 200
        or collection.startswith(".")
        or any(c in collection for c in "/\\\0")
    ):
        raise RagError(
            f"invalid collection name {collection!r}: use 1-200 characters without '/' or '\\', "
            "not starting with '.'"
        )
    return collection


def prepare_store(folder: Path) -> Path:
    """Use ``folder`` as a store: a new or empty folder gets the marker, others are refused.

    Refusing unmarked non-empty folders keeps collections from being created inside, say, a
    documents folder or a qdrant-client local-mode folder passed by mistake.
    """
    if folder.exists() and not folder.is_dir():
        raise RagError(f"{folder} is a file, not a Qdrant Edge store folder")
    if (folder / EDGE_MARKER).is_file():
        return folder
    if (folder / "meta.json").is_file() or (folder / "collection").is_dir():
        raise RagError(
            f"{folder} is a qdrant-client local-mode folder, not a Qdrant Edge store: "
            "open it with `--store local`"
        )
    if (folder / SHARD_CONFIG).is_file():
        raise RagError(
            f"{folder} is a single Qdrant Edge shard, not a gemlm store folder (which holds one "
            "shard folder per collection)"
        )
    try:
        if folder.is_dir() and any(folder.iterdir()):
            raise RagError(
                f"{folder} holds other files and is not a gemlm Qdrant Edge store "
                f"(no {EDGE_MARKER}); choose a new or empty folder"
            )
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / EDGE_MARKER, {"engine": "qdrant-edge", "format": STORE_FORMAT})
    except OSError as exc:
        raise RagError(f"cannot use {folder} as a Qdrant Edge store: {exc}") from exc
    return folder


@contextmanager
def engine_errors(what: str, where: Path) -> Iterator[None]:
    """Re-raise Qdrant Edge errors as RagError naming the operation and the folder."""
    try:
        yield
    except RagError:
        raise
    except Exception as exc:
        raise RagError(f"Qdrant Edge {what} failed for {where}: {exc}") from exc


class EdgeBackend:
    """A Qdrant Edge store folder; shards are opened on first use and kept open until close."""

    def __init__(self, folder: Path, *, indexing_threshold_kb: int | None = None) -> None:
        self.root = prepare_store(Path(folder).expanduser())
        self.location = str(self.root)
        self.indexing_threshold_kb = indexing_threshold_kb  # None: Qdrant's default (10,000 KB)
        self._shards: dict[str, qe.EdgeShard] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Flush and release every open shard (their folder locks too)."""
        with self._lock:
            shards, self._shards = self._shards, {}
        failed = []
        for name, shard in shards.items():
            try:
                shard.close()
            except Exception as exc:
                failed.append(f"{name}: {exc}")
        if failed:
            raise RagError(f"closing Qdrant Edge collections at {self.root}: " + "; ".join(failed))

    # ------------------------------------------------------------------ collections
    def collections(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def exists(self, collection: str) -> bool:
        return (self.root / check_name(collection)).is_dir()

    def metadata(self, collection: str) -> Any:
        """The stored identity, or None; opens the shard so a damaged or busy one fails now."""
        self._shard(collection)
        path = self.root / collection / IDENTITY_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RagError(f"cannot read the collection identity {path}: {exc}") from exc
        return data.get(META_KEY) if isinstance(data, dict) else None

    def drop(self, collection: str) -> None:
        """Delete the collection's folder; refused while another process has it open."""
        folder = self.root / check_name(collection)
        if not (folder / SHARD_CONFIG).is_file():
            raise RagError(
                f"{folder} is not a Qdrant Edge collection (no {SHARD_CONFIG}); left as is"
            )
        with self._lock:
            shard = self._shards.pop(collection, None)
        if shard is None:
            shard = self._load_for_drop(collection)
        if shard is not None:
            with engine_errors("close", folder):
                shard.close()
        trash = self.root / f".drop-{uuid.uuid4().hex}"
        try:
            os.rename(folder, trash)
        except OSError as exc:
            raise RagError(f"cannot delete collection {collection!r} at {folder}: {exc}") from exc
        shutil.rmtree(trash, ignore_errors=True)

    def _load_for_drop(self, collection: str) -> qe.EdgeShard | None:
        """The shard (holding its lock) before deleting it; None if it is too damaged to open."""
        try:
            return self._load(collection)
        except CollectionBusy:
            raise
        except RagError:
            return None

    def create(self, collection: str, dimension: int, meta: dict[str, Any]) -> None:
        """Build the shard and its identity in a hidden folder, then rename it into place."""
        final = self.root / check_name(collection)
        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=self.root))
        try:
            self._init_shard(tmp, dimension)
            write_json_atomic(tmp / IDENTITY_FILE, {META_KEY: meta})
            try:
                os.rename(tmp, final)  # fails if another process created it meanwhile
            except OSError as exc:
                msg = f"cannot create collection {collection!r} at {final}: {exc}"
                raise RagError(msg) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _init_shard(self, folder: Path, dimension: int) -> None:
        optimizers = None
        if self.indexing_threshold_kb is not None:
            optimizers = qe.EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb)
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine),
            optimizers=optimizers,
        )
        with engine_errors("create", folder):
            shard = qe.EdgeShard.create(str(folder), config)
            try:
                index = qe.KeywordIndexParams(enable_hnsw=False)
                shard.update(qe.UpdateOperation.create_field_index(SOURCE_KEY, index))
            finally:
                shard.close()

    def _shard(self, collection: str) -> qe.EdgeShard:
        with self._lock:
            shard = self._shards.get(collection)
            if shard is None:
                shard = self._shards[collection] = self._load(collection)
            return shard

    def _load(self, collection: str) -> qe.EdgeShard:
        folder = self.root / check_name(collection)
        if not folder.is_dir():
            raise MissingCollection(f"no collection {collection!r} at {self.root}")
        if not (folder / SHARD_CONFIG).is_file():  # Edge would create wal/ and segments/ in it
            raise RagError(f"{folder} is not a Qdrant Edge collection (no {SHARD_CONFIG})")
        try:
            return qe.EdgeShard.load(str(folder))
        except Exception as exc:
            if "WouldBlock" in str(exc):
                raise CollectionBusy(
                    f"collection {collection!r} at {folder} is already open in another process "
                    "(or another RagStore in this one): Qdrant Edge opens a collection in one "
                    "place at a time. Stop the other one (e.g. `gemlm serve`), or use a Qdrant "
                    "server (--qdrant-url) for concurrent access"
                ) from exc
            raise RagError(
                f"cannot open collection {collection!r} at {folder} (damaged, or written by an "
                f"incompatible Qdrant Edge version?): {exc}"
            ) from exc

    def info(self, collection: str) -> dict[str, int]:
        """Segments, points and HNSW-indexed vectors (indexed < points: not optimized yet)."""
        shard = self._shard(collection)
        with engine_errors("info", self.root / collection):
            i = shard.info()
            return {
                "segments": i.segments_count,
                "points": i.points_count,
                "indexed_vectors": i.indexed_vectors_count,
            }

    def optimize(self, collection: str) -> bool:
        shard = self._shard(collection)
        with engine_errors("optimize", self.root / collection):
            changed = shard.optimize()
            shard.flush()
            return bool(changed)

    # ------------------------------------------------------------------ points
    def count(self, collection: str) -> int:
        shard = self._shard(collection)
        with engine_errors("count", self.root / collection):
            return shard.count(qe.CountRequest(exact=True))

    def existing_ids(self, collection: str, ids: list[str]) -> set[str]:
        shard = self._shard(collection)
        found: set[str] = set()
        with engine_errors("retrieve", self.root / collection):
            for i in range(0, len(ids), PAGE):
                records = shard.retrieve(ids[i : i + PAGE], with_payload=False, with_vector=False)
                found.update(str(r.id) for r in records)
        return found

    def upsert(
        self, collection: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None:
        """Write one batch and flush it to disk before returning."""
        shard = self._shard(collection)
        with engine_errors("upsert", self.root / collection):
            points = [qe.Point(i, v, p) for i, v, p in zip(ids, vectors, payloads, strict=True)]
            shard.update(qe.UpdateOperation.upsert_points(points))
            shard.flush()

    def ids_for_source(self, collection: str, source: str) -> set[str]:
        shard = self._shard(collection)
        flt = source_filter(source)
        out: set[str] = set()
        offset = None
        with engine_errors("scroll", self.root / collection):
            while True:
                request = qe.ScrollRequest(
                    offset=offset, limit=PAGE, filter=flt, with_payload=False, with_vector=False
                )
                records, offset = shard.scroll(request)
                out.update(str(r.id) for r in records)
                if offset is None:
                    return out

    def sources(self, collection: str) -> dict[str, int]:
        """Passages per ``source`` (an exact facet on its keyword index); deleted points count 0
        until ``optimize`` vacuums them, and are left out."""
        shard = self._shard(collection)
        request = qe.FacetRequest(SOURCE_KEY, limit=FACET_ALL, exact=True)
        with engine_errors("facet", self.root / collection):
            hits = shard.facet(request).hits
        return {str(h.value): int(h.count) for h in hits if h.count > 0}

    def remove_source(self, collection: str, source: str) -> int:
        """Delete every passage of ``source`` with one filtered delete; how many there were."""
        shard = self._shard(collection)
        flt = source_filter(source)
        with engine_errors("delete", self.root / collection):
            n = shard.count(qe.CountRequest(exact=True, filter=flt))
            if n:
                shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
                shard.flush()
        return n

    def delete(self, collection: str, ids: list[str]) -> None:
        shard = self._shard(collection)
        with engine_errors("delete", self.root / collection):
            shard.update(qe.UpdateOperation.delete_points(ids))
            shard.flush()

    def search(
        self, collection: str, vector: np.ndarray, top_k: int, hnsw_ef: int | None = None
    ) -> list[Hit]:
        """Nearest points by cosine; ``hnsw_ef`` widens the HNSW search (default: ef_construct,
        100), trading latency for recall (``benchmarks/vector_store.py --ef``)."""
        shard = self._shard(collection)
        request = qe.QueryRequest(
            limit=top_k,
            query=qe.Query.Nearest(vector.tolist()),
            with_payload=True,
            params=qe.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef else None,
        )
        with engine_errors("search", self.root / collection):
            points = shard.query(request)
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]


def source_filter(source: str) -> qe.Filter:
    """Points whose ``source`` is ``source``."""
    return qe.Filter(must=[qe.FieldCondition(key=SOURCE_KEY, match=qe.MatchValue(source))])
