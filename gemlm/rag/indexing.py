"""Files -> passages -> ``encode_document`` vectors -> Qdrant, resumable and idempotent.

An index run first reads its inputs (``read_inputs``: no model needed, so a missing path, an
unreadable or an empty file is known before any model loads). Passage ids are uuid5 of (source,
doc id, text hash), so re-indexing a file adds nothing new; passages already stored are not
embedded again, so a run killed half-way is simply re-run and completes; each batch is written
(and waited for) as soon as it is embedded. Afterwards the collection matches what was read
(``finish_index``): passages of a re-read file that are no longer in it are deleted (all of them
for a file now empty), and so are the passages of files gone from an indexed folder (unless
``keep_missing``). Finally the store builds its search index (``RagStore.optimize``: HNSW with
Qdrant Edge), so a run ends with a collection ready to query.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from .documents import Document, FileRead, Passage, chunk_document, expand_paths, read_file
from .store import RagStore, model_identity
from .types import RagError

if TYPE_CHECKING:
    from gemlm.model import GEMModel

DEFAULT_CHUNK_TOKENS = 256


class MissingPaths(RagError):
    """Paths given to index that do not exist."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(f"no such file or folder: {', '.join(paths)}")
        self.paths = paths


@dataclass
class IndexInputs:
    """What one run indexes, read before any model loads.

    ``files``: every file found (read, or with the ``problem`` that kept it from being read);
    ``missing``: given paths that do not exist (only with ``skip_missing``); ``folders``: the
    given folders, resolved: a stored source under one whose file is gone is removed unless
    ``keep_missing``.
    """

    files: list[FileRead] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    keep_missing: bool = False

    @property
    def documents(self) -> list[Document]:
        return [d for f in self.files for d in f.documents]


def read_inputs(
    paths: Sequence[str | os.PathLike], *, skip_missing: bool = False, keep_missing: bool = False
) -> IndexInputs:
    """Read every file named or found under a folder (each once); unreadable ones warn.

    A path that does not exist raises ``MissingPaths`` (naming all of them) unless
    ``skip_missing``; then it is listed in ``missing``.
    """
    given = [Path(p).expanduser() for p in paths]
    missing = [str(p) for p in given if not p.exists()]
    if missing and not skip_missing:
        raise MissingPaths(missing)
    present = [p for p in given if p.exists()]
    inputs = IndexInputs(
        missing=missing,
        folders=sorted({str(p.resolve()) for p in present if p.is_dir()}),
        keep_missing=keep_missing,
    )
    seen: set[str] = set()
    for path in expand_paths(present):
        read = read_file(path)
        if read.source in seen:
            continue
        seen.add(read.source)
        inputs.files.append(read)
        if read.problem:
            warnings.warn(f"skipping {path}: {read.problem}", stacklevel=2)
    return inputs


def as_inputs(paths: Sequence[str | os.PathLike] | IndexInputs, **options: bool) -> IndexInputs:
    """``paths`` as read inputs (already read ones are returned as they are)."""
    return paths if isinstance(paths, IndexInputs) else read_inputs(paths, **options)


@dataclass
class IndexReport:
    """What a run did. ``removed``: passages of re-read files no longer in them; ``gone_files``
    / ``gone_passages``: sources under the indexed folders whose files are gone, and their
    passages (deleted, or kept with ``keep_missing``); ``sources``: every file read."""

    files: int = 0  # files with text
    skipped: list[str] = field(default_factory=list)  # files that could not be read
    missing: list[str] = field(default_factory=list)  # given paths that do not exist
    empty: list[str] = field(default_factory=list)  # files read but holding no text
    passages: int = 0
    added: int = 0
    already_present: int = 0
    removed: int = 0
    gone_files: list[str] = field(default_factory=list)
    gone_passages: int = 0
    keep_missing: bool = False
    folders: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def start_report(inputs: IndexInputs) -> IndexReport:
    """The report of a run before any chunking: what was read, skipped, missing or empty."""
    readable = [f for f in inputs.files if f.readable]
    return IndexReport(
        files=sum(1 for f in readable if f.documents),
        skipped=[str(f.path) for f in inputs.files if not f.readable],
        missing=list(inputs.missing),
        empty=[str(f.path) for f in readable if f.empty],
        keep_missing=inputs.keep_missing,
        folders=list(inputs.folders),
        sources=[f.source for f in readable],
    )


def chunk_inputs(
    inputs: IndexInputs, tokenizer: Any, chunk_tokens: int, overlap: int
) -> dict[str, Passage]:
    """Every unique passage of the inputs by id, in file order."""
    unique: dict[str, Passage] = {}
    for doc in inputs.documents:
        for p in chunk_document(doc, tokenizer, chunk_tokens, overlap):
            unique.setdefault(p.id, p)
    return unique


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
    paths: Sequence[str | os.PathLike] | IndexInputs,
    *,
    model_id: str,
    chunk_tokens: int | None = None,
    overlap: int | None = None,
) -> tuple[IndexReport, dict[str, Passage], list[Passage]]:
    """Everything before embedding, shared by the local and the Ray indexer.

    Reads the files (unless ``paths`` are inputs already read), chunks them, creates (or checks)
    the collection for this model and splits the unique passages into those already stored and
    those to embed. Returns the report so far, every unique passage by id, and the passages
    still to embed (in file order).
    """
    inputs = as_inputs(paths)
    chunk_tokens, overlap = resolve_chunking(model, chunk_tokens, overlap)
    report = start_report(inputs)
    unique = chunk_inputs(inputs, model.tokenizer, chunk_tokens, overlap)
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
    """After embedding, make the collection match what was read, then let the store build its
    search index (``RagStore.optimize``).

    Deletes the stored passages of every file read that are not among ``unique`` (an edited
    file's old passages, all of an emptied file's), and those of files gone from the indexed
    folders (``remove_gone``). Nothing to do when the collection does not exist.
    """
    if not store.exists(collection):
        return
    for source in report.sources:
        stale = store.ids_for_source(collection, source) - set(unique)
        store.delete(collection, stale)
        report.removed += len(stale)
    remove_gone(store, collection, report)
    store.optimize(collection)


def is_gone(source: str) -> bool:
    """True if no file or folder is at ``source`` (any other error means it may still be)."""
    try:
        os.stat(source)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def gone_sources(store: RagStore, collection: str, report: IndexReport) -> dict[str, int]:
    """Stored sources under the report's folders that were not read and are gone from disk,
    with their passage counts. A file that is there but could not be read keeps its passages."""
    if not report.folders:
        return {}
    read = set(report.sources)
    folders = [Path(f) for f in report.folders]
    return {
        source: n
        for source, n in store.sources(collection).items()
        if source not in read
        and any(Path(source).is_relative_to(f) for f in folders)
        and is_gone(source)
    }


def remove_gone(store: RagStore, collection: str, report: IndexReport) -> None:
    """Delete the passages of files gone from the indexed folders (count them if kept)."""
    gone = gone_sources(store, collection, report)
    report.gone_files = sorted(gone)
    if report.keep_missing:
        report.gone_passages = sum(gone.values())
        return
    report.gone_passages = sum(store.remove_source(collection, source) for source in gone)


def index_paths(
    model: GEMModel,
    store: RagStore,
    collection: str,
    paths: Sequence[str | os.PathLike] | IndexInputs,
    *,
    model_id: str,
    chunk_tokens: int | None = None,
    overlap: int | None = None,
    batch_size: int = 32,
    group_size: int = 512,
    progress: bool = False,
    skip_missing: bool = False,
    keep_missing: bool = False,
) -> IndexReport:
    """Index files into ``collection`` (created for this model if missing, else checked).

    ``paths`` are files and folders (``read_inputs`` with ``skip_missing`` / ``keep_missing``)
    or inputs already read. ``chunk_tokens`` defaults to 256 (or what fits the embedding
    window), ``overlap`` to an eighth of it (at most 32). Passages are embedded and stored
    ``group_size`` at a time (``encode`` sorts a group by length before cutting batches of
    ``batch_size``, so a larger group pads less; an interrupted run loses at most one group).
    """
    inputs = as_inputs(paths, skip_missing=skip_missing, keep_missing=keep_missing)
    report, unique, todo = plan_index(
        model,
        store,
        collection,
        inputs,
        model_id=model_id,
        chunk_tokens=chunk_tokens,
        overlap=overlap,
    )
    if todo:
        embed_into(model, store, collection, todo, report, batch_size, group_size, progress)
    finish_index(store, collection, unique, report)
    return report


def embed_into(
    model: GEMModel,
    store: RagStore,
    collection: str,
    todo: list[Passage],
    report: IndexReport,
    batch_size: int,
    group_size: int,
    progress: bool,
) -> None:
    """Embed ``todo`` ``group_size`` passages at a time, each group written once embedded."""
    bar = tqdm(total=len(todo), desc="embedding passages", unit="passage", disable=not progress)
    for i in range(0, len(todo), group_size):
        batch = todo[i : i + group_size]
        vectors = model.encode_document([p.text for p in batch], batch_size=batch_size)
        store.upsert(collection, [p.id for p in batch], vectors, [p.payload() for p in batch])
        report.added += len(batch)
        bar.update(len(batch))
    bar.close()
