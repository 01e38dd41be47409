"""The output folder of ``embed_files_ray``: Parquet parts written atomically, resumable.

Each part is written under a hidden temporary name, synced, then renamed, so a killed run
leaves only complete parts; a rerun reads the ids they hold and skips them. A manifest keeps one
model's vectors per folder and a lock keeps one run per folder.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json_atomic
from .inputs import EngineError

PART_GLOB = "part-*.parquet"
TMP_GLOB = ".part-*.parquet.tmp"  # hidden: Parquet dataset readers skip names starting with "."
MANIFEST = "_gemlm.json"  # "_" is skipped by readers too
LOCK = ".gemlm.lock"


def prepare_out(out: str | os.PathLike) -> Path:
    """The output folder, created if missing; EngineError if it is a file."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise EngineError(f"--out must be a folder (Parquet parts go there), not a file: {path}")
    if not path.exists() and path.suffix in (".npy", ".jsonl", ".parquet"):
        raise EngineError(f"--out is a folder of Parquet parts with the ray engine, not {path}")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """One run per output folder at a time (its temporary files would be cleaned by another)."""
    with open(out / LOCK, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise EngineError(f"another run is writing to {out}") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def remove_temp_parts(out: Path) -> int:
    """Delete parts a killed run left half-written (never renamed into place)."""
    stale = list(out.glob(TMP_GLOB))
    for f in stale:
        f.unlink()
    return len(stale)


def check_manifest(out: Path, meta: dict[str, Any]) -> None:
    """Record which model and prompt fill ``out``; refuse to mix two in one folder."""
    path = out / MANIFEST
    if path.exists() and any(out.glob(PART_GLOB)):
        stored = json.loads(path.read_text())
        if stored != meta:
            raise EngineError(
                f"{out} holds embeddings made with {stored}, not {meta}: use another --out"
            )
        return
    write_json_atomic(path, meta)


def written_ids(out: Path) -> set[str]:
    """Every id in the complete parts of ``out``."""
    ids: set[str] = set()
    for f in sorted(out.glob(PART_GLOB)):
        try:
            ids.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
        except (OSError, pa.ArrowException) as exc:
            raise EngineError(f"{f} is not a readable part ({exc}); delete it and rerun") from exc
    return ids


def _dump_table(table: Any, fh: Any) -> None:
    """Parquet bytes of ``table`` into an open file (the step a killed run interrupts)."""
    pq.write_table(table, fh)


def embeddings_table(ids: list[str], texts: list[str], vectors: Any) -> Any:
    """Rows as written: id (string), text (string), vector (fixed-size list of float32)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = pa.array(vectors.reshape(-1), pa.float32())
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "text": pa.array(texts, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
        }
    )


def vector_matrix(table: Any) -> np.ndarray:
    """The ``vector`` column of an Arrow table as an (n, dim) float32 array."""
    column = table.column("vector").combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(len(column), column.type.list_size)


def write_part(out: Path, name: str, table: Any) -> Path:
    """``table`` as one Parquet part: written under a hidden temporary name, synced, then
    renamed into place, so the folder never holds half a part under a part's name."""
    final, tmp = out / f"{name}.parquet", out / f".{name}.parquet.tmp"
    with open(tmp, "wb") as fh:
        _dump_table(table, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def read_embeddings(out: str | os.PathLike) -> Any:
    """All complete parts of ``out`` as one pyarrow Table (id, text, vector)."""
    return pq.read_table(Path(out), ignore_prefixes=[".", "_"])
