"""Files -> passages -> ``encode_document`` vectors -> Qdrant, resumable and idempotent.

Passage ids are uuid5 of (source, doc id, text hash), so re-indexing a file adds nothing new;
passages already stored are not embedded again, so a run killed half-way is simply re-run and
completes; each batch is written (and waited for) as soon as it is embedded. Passages of a
re-indexed file that are no longer in it are deleted. Finally the store builds its search index
(``RagStore.optimize``: HNSW with Qdrant Edge), so a run ends with a collection ready to query.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .documents import Passage, chunk_document, expand_paths, read_documents
from .store import RagStore, model_identity

if TYPE_CHECKING:
    from gemlm.model import GEMModel

DEFAULT_CHUNK_TOKENS = 256


@dataclass
class IndexReport:
    files: int = 0
    skipped: list[str] = field(default_factory=list)
    passages: int = 0
    added: int = 0
    already_present: int = 0
    removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def collect_passages(
    paths: list[str | Path], tokenizer: Any, chunk_tokens: int, overlap: int, report: IndexReport
) -> list[Passage]:
    """Read and chunk every file; unreadable/binary files are warned about and listed."""
    out: list[Passage] = []
    for path in expand_paths(paths):
        if not path.exists():
            warnings.warn(f"skipping {path}: no such file", stacklevel=2)
            report.skipped.append(str(path))
            continue
        docs = read_documents(path)
        if not docs:
            report.skipped.append(str(path))
            continue
        report.files += 1
        for doc in docs:
            out += chunk_document(doc, tokenizer, chunk_tokens, overlap)
    return out


def max_chunk_tokens(model: GEMModel) -> int:
    """Room for a passage inside the embedding window (document prompt + tail excluded)."""
    return model.text_room("document")


def resolve_chunking(
    model: GEMModel, chunk_tokens: int | None, overlap: int | None
) -> tuple[int, int]:
    """``chunk_tokens`` (default 256, or what fits the embedding window) and ``overlap`` (an
    eighth of it, at most 32); ValueError if the window cannot hold ``chunk_tokens``."""
    room = max_chunk_tokens(model)
    chunk_tokens = chunk_tokens or min(DEFAULT_CHUNK_TOKENS, room)
    overlap = min(32, chunk_tokens // 8) if overlap is None else overlap
    if chunk_tokens > room:
        raise ValueError(
            f"chunk_tokens={chunk_tokens} does not fit the embedding window "
            f"(max_length={model.config.max_length}): use at most {room}"
        )
    return chunk_tokens, overlap


def plan_index(
    model: GEMModel,
    store: RagStore,
    collection: str,
    paths: list[str | Path],
    *,
    model_id: str,
    chunk_tokens: int | None = None,
    overlap: int | None = None,
) -> tuple[IndexReport, dict[str, Passage], list[Passage]]:
    """Everything before embedding, shared by the local and the Ray indexer.

    Chunks the files, creates (or checks) the collection for this model and splits the unique
    passages into those already stored and those to embed. Returns the report so far, every
    unique passage by id, and the passages still to embed (in file order).
    """
    chunk_tokens, overlap = resolve_chunking(model, chunk_tokens, overlap)
    report = IndexReport()
    passages = collect_passages(paths, model.tokenizer, chunk_tokens, overlap, report)
    unique: dict[str, Passage] = {}
    for p in passages:
        unique.setdefault(p.id, p)
    report.passages = len(unique)
    if not unique:
        return report, unique, []
    store.ensure(
        collection,
        model_identity(model, model_id),
        extra={"chunk_tokens": chunk_tokens, "overlap": overlap},
    )
    present = store.existing_ids(collection, list(unique))
    report.already_present = len(present)
    return report, unique, [p for pid, p in unique.items() if pid not in present]


def finish_index(
    store: RagStore, collection: str, unique: dict[str, Passage], report: IndexReport
) -> None:
    """After embedding: delete stored passages of the indexed files that are no longer in them,
    then let the store build its search index (``RagStore.optimize``)."""
    for source in sorted({p.source for p in unique.values()}):
        stale = store.ids_for_source(collection, source) - set(unique)
        store.delete(collection, stale)
        report.removed += len(stale)
    store.optimize(collection)


def index_paths(
    model: GEMModel,
    store: RagStore,
    collection: str,
    paths: list[str | Path],
    *,
    model_id: str,
    chunk_tokens: int | None = None,
    overlap: int | None = None,
    batch_size: int = 32,
    group_size: int = 512,
    progress: bool = False,
) -> IndexReport:
    """Index files into ``collection`` (created for this model if missing, else checked).

    ``chunk_tokens`` defaults to 256 (or what fits the embedding window), ``overlap`` to
    an eighth of it (at most 32). Passages are embedded and stored ``group_size`` at a time
    (``encode`` sorts a group by length before cutting batches of ``batch_size``, so a larger
    group pads less; an interrupted run loses at most one group).
    """
    report, unique, todo = plan_index(
        model,
        store,
        collection,
        paths,
        model_id=model_id,
        chunk_tokens=chunk_tokens,
        overlap=overlap,
    )
    if not unique:
        return report

    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="embedding passages", unit="passage", disable=not progress)
    for i in range(0, len(todo), group_size):
        batch = todo[i : i + group_size]
        vectors = model.encode_document([p.text for p in batch], batch_size=batch_size)
        store.upsert(collection, [p.id for p in batch], vectors, [p.payload() for p in batch])
        report.added += len(batch)
        bar.update(len(batch))
    bar.close()
    finish_index(store, collection, unique, report)
    return report
