"""Text corpora: read a source into a :class:`datasets.Dataset`, hold out an eval slice.

Used by training (NTP blocks, contrastive sentences and pairs), evaluation (held-out
perplexity) and benchmarks. ``load_texts`` turns a source into a Dataset with exactly one
``text`` column. A source is a plain-text file (one document per line, or blank-line separated
paragraphs), a ``.jsonl`` / ``.json`` / ``.parquet`` file, a folder written by
``Dataset.save_to_disk``, WikiExtractor output (a file or a folder of files), a list of any of
these, or a hub dataset id. ``load_documents`` keeps WikiExtractor articles whole (``title`` and
``paragraphs`` columns). ``train_eval_split`` holds out a fixed slice.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc

from .files import (
    FILE_SUFFIXES,
    file_format,
    folder_files,
    missing_column,
    read_file,
    read_folder,
    wiki_documents,
)

logger = logging.getLogger(__name__)

TEXT = "text"
TEXT_FEATURES = datasets.Features({TEXT: datasets.Value("string")})
DOC_FEATURES = datasets.Features(
    {"title": datasets.Value("string"), "paragraphs": datasets.List(datasets.Value("string"))}
)

SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

PathLike = str | os.PathLike


# --------------------------------------------------------------------------- loading


def load_texts(
    source: PathLike | Sequence[PathLike],
    *,
    text_column: str = "text",
    min_words: int = 8,
    split: str = "train",
) -> datasets.Dataset:
    """Load ``source`` as a Dataset with one ``text`` column, one row per unit of text.

    ``text_column`` names the column of structured sources (jsonl/json/parquet, saved or hub
    datasets). ``min_words`` drops shorter lines/paragraphs from plain-text and WikiExtractor
    sources (structured sources keep every non-blank row). ``split`` picks the split of a hub
    dataset or of a saved ``DatasetDict``. A list of sources is concatenated in order.
    """
    sources = list(source) if isinstance(source, list | tuple) else [source]
    if not sources:
        raise ValueError("load_texts got an empty list of sources: no text to load")
    parts = [_load_one(s, text_column, min_words, split) for s in sources]
    ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    logger.info("Loaded %d texts from %s", len(ds), _describe(source))
    return ds


def _load_one(source: PathLike, column: str, min_words: int, split: str) -> datasets.Dataset:
    """One file, folder or hub id as a ``text`` Dataset; raises when it holds no text."""
    name = os.fspath(source)
    path = Path(name).expanduser()
    if path.is_dir() and _is_saved_dataset(path):
        ds = _text_only(_load_saved(path, split), column, str(path))
    elif path.is_dir():
        ds = _from_texts(read_folder(path, column, min_words))
    elif path.is_file():
        ds = _from_texts(read_file(path, file_format(path), column, min_words))
    elif _looks_like_hub_id(name):
        ds = _text_only(_load_hub(name, split), column, f"hub dataset {name!r}")
    else:
        raise FileNotFoundError(f"{name}: no such file or folder")
    if len(ds) == 0:
        raise ValueError(
            f"{name}: no text found (every unit was blank or, for line/paragraph formats, "
            f"shorter than min_words={min_words} words)"
        )
    return ds


def _describe(source: PathLike | Sequence[PathLike]) -> str:
    if isinstance(source, list | tuple):
        return f"{len(source)} sources"
    return os.fspath(source)


def _from_texts(texts: list[str]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({TEXT: texts}, features=TEXT_FEATURES)


def _looks_like_hub_id(name: str) -> bool:
    """``name`` or ``org/name`` that is not obviously a file path (no leading ``./``, no suffix)."""
    if not HUB_ID.match(name):
        return False
    return Path(name).suffix.lower() not in FILE_SUFFIXES


def load_documents(source: PathLike | Sequence[PathLike], min_words: int = 8) -> datasets.Dataset:
    """Load ``source`` as a Dataset of documents: columns ``title`` and ``paragraphs``.

    WikiExtractor files (alone or inside a folder) give one row per ``<doc>`` block that keeps
    at least one paragraph of ``min_words`` words. Every other unit ``load_texts`` would read
    becomes a row with title "" and paragraphs ``[text]``. A list of sources is concatenated.
    """
    sources = list(source) if isinstance(source, list | tuple) else [source]
    if not sources:
        raise ValueError("load_documents got an empty list of sources: no text to load")
    parts = [_documents_one(s, min_words) for s in sources]
    ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    logger.info("Loaded %d documents from %s", len(ds), _describe(source))
    return ds


def _documents_one(source: PathLike, min_words: int) -> datasets.Dataset:
    path = Path(os.fspath(source)).expanduser()
    if path.is_dir() and not _is_saved_dataset(path):
        files = folder_files(path)
    elif path.is_file() and file_format(path) == "wiki":
        files = [(path, "wiki")]
    else:  # saved or hub datasets, other files, missing paths: as load_texts treats them
        texts = load_texts(source, min_words=min_words)[TEXT][:]
        return _from_documents([("", [t]) for t in texts])
    if not files:
        raise ValueError(f"{path}: no text files found (expected WikiExtractor output)")
    docs: list[tuple[str, list[str]]] = []
    for file, fmt in files:
        if fmt == "wiki":
            docs.extend(d for d in wiki_documents(file, min_words) if d[1])
        else:
            docs.extend(("", [t]) for t in read_file(file, fmt, TEXT, min_words))
    if not docs:
        raise ValueError(f"{path}: no document with a paragraph of min_words={min_words} words")
    return _from_documents(docs)


def _from_documents(docs: list[tuple[str, list[str]]]) -> datasets.Dataset:
    titles = [title for title, _ in docs]
    paragraphs = [body for _, body in docs]
    return datasets.Dataset.from_dict(
        {"title": titles, "paragraphs": paragraphs}, features=DOC_FEATURES
    )


# --------------------------------------------------------------------------- datasets


def _is_saved_dataset(folder: Path) -> bool:
    return any((folder / marker).is_file() for marker in SAVED_MARKERS)


def _load_saved(folder: Path, split: str) -> datasets.Dataset:
    """A ``save_to_disk`` folder; for a ``DatasetDict`` the ``split`` entry."""
    loaded = datasets.load_from_disk(str(folder))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ValueError(f"{folder}: no split {split!r} (splits: {', '.join(loaded)})")
        loaded = loaded[split]
    return loaded


def _load_hub(name: str, split: str) -> datasets.Dataset:
    try:
        return datasets.load_dataset(name, split=split)
    except Exception as err:  # any failure (network, missing repo, bad split) is the same
        raise ValueError(
            f"{name!r} is neither a local path nor a reachable hub dataset "
            f"(split={split!r}): {type(err).__name__}: {err}"
        ) from err


def _text_only(ds: datasets.Dataset, column: str, where: str) -> datasets.Dataset:
    """Keep ``column`` only, renamed to ``text`` as a string column, without blank rows."""
    if column not in ds.column_names:
        raise missing_column(where, column, ds.column_names)
    feature = ds.features[column]
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        raise ValueError(f"{where}: column {column!r} holds {feature}, not text")
    ds = ds.select_columns([column])
    if column != TEXT:
        ds = ds.rename_column(column, TEXT)
    if feature.dtype != "string":
        ds = ds.cast(TEXT_FEATURES, keep_in_memory=True)
    return _drop_blank(ds)


def _drop_blank(ds: datasets.Dataset) -> datasets.Dataset:
    """Rows whose text is null or whitespace go; nothing is written to disk."""
    col = ds.with_format("arrow")[:][TEXT]
    stripped = pc.utf8_trim_whitespace(col)
    keep = pc.fill_null(pc.greater(pc.utf8_length(stripped), 0), False)
    if pc.all(keep).as_py() is not False:
        return ds
    indices = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
    return ds.select(indices, keep_in_memory=True)


# --------------------------------------------------------------------------- splitting


def train_eval_split(
    ds: datasets.Dataset, eval_rows: int = 1000, seed: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, eval): ``eval_rows`` random rows held out, or 10% when ``ds`` is small.

    The split depends only on ``len(ds)``, ``eval_rows`` and ``seed``; both parts keep the
    original row order. Datasets with at most ``2 * eval_rows`` rows hold out 10% (at least 1).
    """
    n = len(ds)
    if n < 2:
        raise ValueError(f"need at least 2 rows to hold out an eval set, got {n}")
    if eval_rows < 1:
        raise ValueError(f"eval_rows must be at least 1, got {eval_rows}")
    n_eval = eval_rows if n > 2 * eval_rows else max(1, n // 10)
    order = np.random.default_rng(seed).permutation(n)
    train_idx, eval_idx = np.sort(order[n_eval:]), np.sort(order[:n_eval])
    return ds.select(train_idx, keep_in_memory=True), ds.select(eval_idx, keep_in_memory=True)
