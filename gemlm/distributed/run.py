"""Runs: files -> Parquet parts (``embed_files_ray``), passages -> a store (``index_paths_ray``)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..rag.indexing import IndexReport, finish_index, plan_index
from ..rag.store import model_id_for
from .actors import (
    ACTOR_START_S,
    DEFAULT_GROUP,
    ActorSpec,
    check_model,
    embed_dataset,
    ray_session,
    require_ray,
    user_error,
)
from .inputs import EngineError, expand_inputs, read_inputs
from .parts import (
    check_manifest,
    locked,
    prepare_out,
    remove_temp_parts,
    vector_matrix,
    write_part,
    written_ids,
)

if TYPE_CHECKING:
    from ..rag.store import RagStore


@dataclass
class EmbedReport:
    """What ``embed_files_ray`` did; ``timings`` in seconds (sums over actors for load/embed)."""

    files: int = 0
    already_present: int = 0  # ids in the folder before this run (not embedded again)
    written: int = 0
    duplicates: int = 0  # rows whose id was already written in this run (not written twice)
    parts: list[str] = field(default_factory=list)
    temp_removed: int = 0
    actors: int = 0  # actors that embedded something
    nodes: int = 0  # machines (Ray nodes) they ran on
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class _Stats:
    """Sums the actors' ``_*`` columns; strips them from a batch."""

    def __init__(self) -> None:
        self.nodes: set[str] = set()
        self.workers: set[str] = set()
        self.load_s = 0.0
        self.embed_s = 0.0

    def take(self, batch: Any) -> None:
        self.nodes.update(batch.column("_node").to_pylist())
        self.workers.update(batch.column("_worker").to_pylist())
        self.load_s += sum(batch.column("_load_s").to_pylist())
        self.embed_s += sum(batch.column("_embed_s").to_pylist())


def embed_files_ray(
    model_name: str,
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    dtype: str = "auto",
    prompt_name: str | None = None,
    actors: int | None = None,
    threads_per_actor: int = 1,
    address: str | None = None,
    batch_size: int = 32,
    group_size: int = DEFAULT_GROUP,
    part_rows: int | None = None,
    progress: bool = False,
) -> EmbedReport:
    """Embed every text of ``inputs`` into Parquet parts under ``out``; resumable.

    ``group_size`` rows go to an actor at a time (sorted by length inside ``encode``, then
    cut into forwards of ``batch_size``); parts hold ``part_rows`` rows (default: a group).
    Ids already in ``out`` are skipped, so a rerun after an interruption completes the job.
    """
    require_ray()
    files = expand_inputs(inputs)
    folder = prepare_out(out)
    check_model(model_name)
    spec = ActorSpec(
        model=model_id_for(model_name),  # a local path made absolute: workers have their own cwd
        dtype=dtype,
        threads=threads_per_actor,
        prompt_name=prompt_name,
        batch_size=batch_size,
    )
    t0 = time.perf_counter()
    with locked(folder):
        report = EmbedReport(files=len(files), temp_removed=remove_temp_parts(folder))
        check_manifest(folder, {"model": spec.model, "prompt_name": prompt_name})
        done = written_ids(folder)
        report.already_present = len(done)
        report.timings["read_existing_s"] = time.perf_counter() - t0
        with ray_session(address, actors, threads_per_actor, progress) as session:
            report.timings["ray_init_s"] = session.init_s
            ref = session.ray.put(frozenset(done)) if done else None
            ds = embed_dataset(
                read_inputs(session.ray, files), spec, session.actors, group_size, ref
            )
            _write_stream(ds, folder, part_rows or group_size, done, report)
    report.timings["total_s"] = time.perf_counter() - t0
    return report


def _write_stream(
    ds: Any, folder: Path, part_rows: int, done: set[str], report: EmbedReport
) -> None:
    """Driver side: write each batch that streams back as one part, skipping ids seen before."""
    stats = _Stats()
    run = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
    start = time.perf_counter()
    report.timings["write_s"] = 0.0
    try:
        with streamed(ds, part_rows) as batches:
            for batch in batches:
                report.timings.setdefault("first_rows_s", time.perf_counter() - start)
                _write_batch(batch, folder, run, done, report, stats)
    finally:
        report.actors, report.nodes = len(stats.workers), len(stats.nodes)
        report.timings.update(
            run_s=time.perf_counter() - start,
            actor_load_s=stats.load_s,
            actor_embed_s=stats.embed_s,
        )


def _write_batch(
    batch: Any, folder: Path, run: str, done: set[str], report: EmbedReport, stats: _Stats
) -> None:
    """One streamed batch -> one part, without the ids already written (in or before this run)."""
    stats.take(batch)
    keep = []
    for i, rid in enumerate(batch.column("id").to_pylist()):
        if rid not in done:
            done.add(rid)
            keep.append(i)
    report.duplicates += batch.num_rows - len(keep)
    if not keep:
        return
    start = time.perf_counter()
    rows = batch.select(["id", "text", "vector"]).take(keep)
    part = write_part(folder, f"part-{run}-{len(report.parts):05d}", rows)
    report.timings["write_s"] += time.perf_counter() - start
    report.parts.append(part.name)
    report.written += len(keep)


@contextmanager
def streamed(ds: Any, batch_size: int) -> Iterator[Iterator[Any]]:
    """Arrow batches of ``ds`` as they are computed. Leaving the block stops the pipeline and
    its actors at once (also on an error), and an EngineError a worker raised comes out as
    itself rather than wrapped in Ray's exceptions."""
    batches = iter(ds.iter_batches(batch_size=batch_size, batch_format="pyarrow"))
    try:
        yield batches
    except Exception as exc:
        err = user_error(exc)
        if err is None and "Timed out while starting actors" in str(exc):
            err = EngineError(
                f"the model actors did not all start within {ACTOR_START_S} s: the cluster has "
                "fewer CPUs than actors x threads per actor, or a worker cannot load the model"
            )
        if err is None:
            raise
        raise err from exc
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def index_paths_ray(
    model_name: str,
    store: RagStore,
    collection: str,
    paths: list[str | Path],
    *,
    model_id: str,
    chunk_tokens: int | None = None,
    overlap: int | None = None,
    batch_size: int = 32,
    group_size: int = DEFAULT_GROUP,
    actors: int | None = None,
    threads_per_actor: int = 1,
    address: str | None = None,
    upsert_batch: int = 256,
    dtype: str = "auto",
    model: Any = None,
    progress: bool = False,
) -> IndexReport:
    """``gemlm.rag.indexing.index_paths`` with the embedding done by Ray actors.

    Chunking, the collection check, the skip of stored passages and the removal of stale ones
    are ``index_paths``' own; the passages to embed go to the actors (``encode_document``)
    and come back in batches of ``upsert_batch`` that the driver upserts (and waits for) at
    once, so an interrupted run is completed by running it again. The driver needs the
    tokenizer and the model's identity: pass the loaded ``model`` if there is one, else it is
    loaded here from ``model_name`` (which is also what every actor loads).
    """
    require_ray()  # before the collection is created
    check_model(model_name)
    if model is None:
        from ..model import GEMModel

        model = GEMModel.from_pretrained(model_name, dtype=dtype)
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
    if todo:
        spec = ActorSpec(
            model=model_id_for(model_name),
            dtype=dtype,
            threads=threads_per_actor,
            method="encode_document",
            batch_size=batch_size,
        )
        with ray_session(address, actors, threads_per_actor, progress) as session:
            rows = [{"id": p.id, "text": p.text} for p in todo]
            ds = embed_dataset(session.ray.data.from_items(rows), spec, session.actors, group_size)
            by_id = {p.id: p for p in todo}
            with streamed(ds, upsert_batch) as batches:
                for batch in batches:
                    ids = batch.column("id").to_pylist()
                    payloads = [by_id[i].payload() for i in ids]
                    store.upsert(collection, ids, vector_matrix(batch), payloads)
                    report.added += len(ids)
    finish_index(store, collection, unique, report)
    return report
