"""Inputs of a Ray run: files -> a Ray Dataset of (id, text) rows; ids for texts without one."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..rag.documents import ID_NAMESPACE  # light: Ray read workers import this module

RAY_INSTALL_HINT = 'pip install "gemlm[ray]"'
INPUT_SUFFIXES = (".txt", ".jsonl")
READ_CPUS = 0  # reading and hashing are light; they must never wait behind the model actors


class EngineError(ValueError):
    """A user-facing problem with a Ray run: inputs, the output folder, Ray itself."""


def text_id(text: str) -> str:
    """The id of a text without one: uuid5 of its sha256, so equal texts share one id."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return str(uuid.uuid5(ID_NAMESPACE, digest))


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """Absolute paths of the named files and of the .txt/.jsonl files under named folders.

    A URI (``s3://...``) is passed through for Ray to read. Every local path must exist;
    a multi-machine cluster must see it at the same path (a shared file system).
    """
    out: list[str] = []
    for item in map(str, inputs):
        if "://" in item:
            out.append(item)
            continue
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix in INPUT_SUFFIXES)
            if not found:
                raise EngineError(f"no .txt or .jsonl files under {path}")
            out += [str(f.resolve()) for f in found]
        elif path.is_file():
            out.append(str(path.resolve()))
        else:
            raise EngineError(f"no such file: {path}")
    if not out:
        raise EngineError("no inputs: name .txt/.jsonl files or folders")
    return out


def parse_line(line: str, kind: str, path: str) -> tuple[str, str] | None:
    """(id, text) of one input line; None for a blank line. ``kind``: "lines" or "jsonl"."""
    if not line.strip():
        return None
    if kind == "lines":
        return text_id(line), line
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise EngineError(f"{path}: not a JSON line: {line[:80]!r}") from exc
    text = row.get("text") if isinstance(row, dict) else None
    if not isinstance(text, str):
        raise EngineError(f"{path}: a row has no string 'text' field: {line[:80]!r}")
    given = row.get("id")
    return (text_id(text) if given is None else str(given)), text


def _prepare(batch: Any, kind: str) -> Any:
    """Ray map over Arrow batches: raw lines (+ their file) -> rows (id, text)."""
    pairs = zip(batch.column("text").to_pylist(), batch.column("path").to_pylist(), strict=True)
    rows = [r for r in (parse_line(line, kind, path) for line, path in pairs) if r is not None]
    return pa.table(
        {
            "id": pa.array([r[0] for r in rows], pa.string()),
            "text": pa.array([r[1] for r in rows], pa.string()),
        }
    )


def read_inputs(ray: Any, files: list[str]) -> Any:
    """A Ray Dataset of rows (id, text) from .txt and .jsonl files (any other suffix: lines)."""
    datasets = []
    for kind, group in (
        ("lines", [f for f in files if not f.endswith(".jsonl")]),
        ("jsonl", [f for f in files if f.endswith(".jsonl")]),
    ):
        if group:
            raw = ray.data.read_text(group, include_paths=True, num_cpus=READ_CPUS)
            datasets.append(
                raw.map_batches(
                    _prepare, fn_kwargs={"kind": kind}, batch_format="pyarrow", num_cpus=READ_CPUS
                )
            )
    return datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
