"""What the RAG store and its engines share: records, collection identity, the engine interface.

``store.py`` (``RagStore``) imports the engines (``edge.py``: Qdrant Edge, ``client.py``:
qdrant-client) and the engines import only this module, never ``store.py`` (an import-linter
contract in pyproject.toml keeps it so). Nothing heavy is imported here: no torch, no numpy at
run time, no Qdrant package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

META_KEY = "gemlm"  # a collection's metadata is {"gemlm": identity}
IDENTITY_KEYS = ("model", "dimension", "embedding")  # compared on open ("embedding": settings)
EDGE_MARKER = ".gemlm-store.json"  # marks a Qdrant Edge store folder (edge.py writes it)
SOURCE_KEY = "source"  # the payload field naming the file a passage came from (keyword-indexed)
FACET_ALL = 2**31 - 1  # a facet limit that returns every value


class RagError(ValueError):
    """A user-facing RAG problem (missing/empty collection, model mismatch, bad question)."""


class MissingCollection(RagError):
    pass


class EmptyCollection(RagError):
    pass


class ModelMismatch(RagError):
    pass


class CollectionBusy(RagError):
    """The collection is open elsewhere (Qdrant Edge opens a collection in one place at a time)."""


@dataclass
class Hit:
    """One retrieved passage with its cosine score (payload as stored)."""

    id: str
    score: float
    payload: dict[str, Any]


class Backend(Protocol):
    """What an engine provides; ``RagStore`` adds the identity checks and user-facing errors.

    Point ids are UUID strings, vectors float32 rows, and every payload holds its passage's
    ``source``. Methods taking a collection may assume it exists (``RagStore`` checks first).
    """

    location: str

    def close(self) -> None: ...

    # collections
    def collections(self) -> list[str]:
        """The collection names, sorted."""
        ...

    def exists(self, collection: str) -> bool: ...
    def metadata(self, collection: str) -> Any:
        """The stored ``{"gemlm": ...}`` value (the identity), or None if there is none."""
        ...

    def create(self, collection: str, dimension: int, meta: dict[str, Any]) -> None:
        """A new cosine collection recording ``meta``, with a keyword index on ``source``
        where the engine has payload indexes."""
        ...

    def drop(self, collection: str) -> None:
        """Delete the collection with all its points."""
        ...

    def count(self, collection: str) -> int: ...
    def optimize(self, collection: str) -> bool:
        """Build the search index for what was written; True if anything was rebuilt."""
        ...

    # points
    def existing_ids(self, collection: str, ids: list[str]) -> set[str]: ...
    def upsert(
        self, collection: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None:
        """Write one batch and wait until it is stored."""
        ...

    def delete(self, collection: str, ids: list[str]) -> None: ...
    def search(self, collection: str, vector: np.ndarray, top_k: int) -> list[Hit]: ...

    # sources
    def ids_for_source(self, collection: str, source: str) -> set[str]: ...
    def sources(self, collection: str) -> dict[str, int]:
        """Passages per source; sources with no passage left are not listed."""
        ...

    def remove_source(self, collection: str, source: str) -> int:
        """Delete every passage of ``source``; how many there were."""
        ...
