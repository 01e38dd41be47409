"""Training text: load a corpus, hold out an eval slice, tokenize into LM chunks or sentences.

``load_texts`` turns a source into a :class:`datasets.Dataset` with exactly one ``text``
column. A source is a plain-text file (one document per line, or blank-line separated
paragraphs), a ``.jsonl`` / ``.json`` / ``.parquet`` file, a folder written by
``Dataset.save_to_disk``, WikiExtractor output (a file or a folder of files), a list of any
of these, or a hub dataset id. ``load_documents`` keeps WikiExtractor articles whole
(``title`` and ``paragraphs`` columns). ``train_eval_split`` holds out a fixed slice,
``tokenize_and_chunk`` packs texts into equal-length token blocks for the generative loss and
``tokenize_texts`` keeps one (truncated) token sequence per text for the contrastive loss.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

TEXT = "text"
IDS = "input_ids"
TEXT_FEATURES = datasets.Features({TEXT: datasets.Value("string")})
IDS_FEATURES = datasets.Features({IDS: datasets.List(datasets.Value("int32"))})
DOC_FEATURES = datasets.Features(
    {"title": datasets.Value("string"), "paragraphs": datasets.List(datasets.Value("string"))}
)

STRUCTURED = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
FILE_SUFFIXES = {".txt", ".text", ".md", ".csv", ".tsv", ".gz", ".bz2", ".zip", *STRUCTURED}
SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
SNIFF_BYTES = 4096
WIKI_TITLE = re.compile(r'\btitle="([^"]*)"')

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
        ds = _from_texts(_read_folder(path, column, min_words))
    elif path.is_file():
        ds = _from_texts(_read_file(path, _file_format(path), column, min_words))
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


def _missing_column(where: object, column: str, existing: Iterable[str]) -> ValueError:
    cols = ", ".join(repr(c) for c in sorted(existing)) or "none"
    return ValueError(
        f"{where}: no column {column!r} (columns: {cols}); pass text_column= to pick one"
    )


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
        files = _folder_files(path)
    elif path.is_file() and _file_format(path) == "wiki":
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
            docs.extend(("", [t]) for t in _read_file(file, fmt, TEXT, min_words))
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
        raise _missing_column(where, column, ds.column_names)
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


# --------------------------------------------------------------------------- files


def _read_folder(folder: Path, column: str, min_words: int) -> list[str]:
    """All usable files under ``folder`` (recursively, sorted, hidden ones skipped)."""
    files = _folder_files(folder)
    if not files:
        raise ValueError(
            f"{folder}: no text files found (expected WikiExtractor output or "
            ".txt/.jsonl/.json/.parquet files, or a Dataset.save_to_disk folder)"
        )
    texts: list[str] = []
    for path, fmt in files:
        texts.extend(_read_file(path, fmt, column, min_words))
    return texts


def _folder_files(folder: Path) -> list[tuple[Path, str]]:
    """(path, format) of the files ``_read_folder`` reads; other files are skipped."""
    found = []
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if hidden or not path.is_file():
            continue
        fmt = _file_format(path)
        if fmt in ("wiki", "jsonl", "json", "parquet") or (fmt == "text" and path.suffix == ".txt"):
            found.append((path, fmt))
    return found


def _file_format(path: Path) -> str | None:
    """'wiki', 'text', 'jsonl', 'json' or 'parquet' by suffix and first line; None if binary."""
    if path.suffix.lower() in STRUCTURED:
        return STRUCTURED[path.suffix.lower()]
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    if b"\x00" in head:
        return None
    first = next((ln.strip() for ln in _decode(head).splitlines() if ln.strip()), "")
    if first.startswith("<doc "):
        return "wiki"
    if not path.suffix and first.startswith("{"):
        return "jsonl"
    return "text"


def _read_file(path: Path, fmt: str | None, column: str, min_words: int) -> list[str]:
    """The units of one file, in order."""
    if fmt == "wiki":
        return list(_wiki_paragraphs(path, min_words))
    if fmt == "text":
        return _plain_units(path, min_words)
    if fmt == "jsonl":
        return _clean(_jsonl_column(path, column), path, column)
    if fmt == "json":
        return _clean(_json_column(path, column), path, column)
    if fmt == "parquet":
        return _clean(_parquet_column(path, column), path, column)
    raise ValueError(
        f"{path}: not a text file; expected plain text, WikiExtractor output, "
        ".jsonl, .json or .parquet"
    )


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").removeprefix("\ufeff")


def _read_text(path: Path) -> str:
    return _decode(path.read_bytes())


def _long_enough(text: str, min_words: int) -> bool:
    return len(text.split()) >= min_words


def _plain_units(path: Path, min_words: int) -> list[str]:
    """One unit per line, or per blank-line separated paragraph when the file has any."""
    lines = [line.strip() for line in _read_text(path).splitlines()]
    units = _paragraphs(lines) if _has_inner_blank(lines) else [ln for ln in lines if ln]
    return [u for u in units if _long_enough(u, min_words)]


def _has_inner_blank(lines: list[str]) -> bool:
    """A blank line between two non-blank ones (blank lines at the ends do not count)."""
    filled = [i for i, line in enumerate(lines) if line]
    return bool(filled) and any(not line for line in lines[filled[0] : filled[-1]])


def _paragraphs(lines: list[str]) -> list[str]:
    """Consecutive non-blank lines joined with a space."""
    paragraphs, current = [], []
    for line in [*lines, ""]:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return paragraphs


def _wiki_paragraphs(path: Path, min_words: int) -> Iterator[str]:
    """Body lines of WikiExtractor ``<doc>`` blocks (the title line after ``<doc`` skipped)."""
    for _, paragraphs in wiki_documents(path, min_words):
        yield from paragraphs


def wiki_documents(path: Path, min_words: int) -> Iterator[tuple[str, list[str]]]:
    """(title, body lines of at least ``min_words`` words) per WikiExtractor ``<doc>`` block.

    The title comes from the ``title="..."`` attribute (HTML entities unescaped; "" when
    absent); the first line after ``<doc ...>``, which repeats the title, is skipped. Every
    block is yielded, also those left without paragraphs; an unclosed block ends at the next
    ``<doc`` or at the end of the file. Lines outside blocks are ignored.
    """
    title, paragraphs = "", []
    in_doc = skip_title = False
    with Path(path).open(encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.strip()
            if line.startswith("<doc ") or line == "<doc>":
                if in_doc:
                    yield title, paragraphs
                title, paragraphs = _doc_title(line), []
                in_doc = skip_title = True
            elif line == "</doc>":
                if in_doc:
                    yield title, paragraphs
                in_doc = False
            elif not in_doc:
                continue
            elif skip_title:
                skip_title = False
            elif line and _long_enough(line, min_words):
                paragraphs.append(line)
    if in_doc:
        yield title, paragraphs


def _doc_title(line: str) -> str:
    """The unescaped ``title`` attribute of a ``<doc ...>`` line, or "".

    >>> _doc_title('<doc id="1" url="?curid=1" title="Cable &amp; Wireless">')
    'Cable & Wireless'
    >>> _doc_title("<doc>")
    ''
    """
    match = WIKI_TITLE.search(line)
    return html.unescape(match.group(1)) if match else ""


def _clean(values: list[Any], path: Path, column: str) -> list[str]:
    """Stripped non-blank strings; nulls are skipped, other types are an error."""
    texts = []
    for value in values:
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValueError(f"{path}: column {column!r} holds {type(value).__name__}, not text")
        if value.strip():
            texts.append(value.strip())
    return texts


def _jsonl_column(path: Path, column: str) -> list[Any]:
    values = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected one JSON object per line")
        if column not in record:
            raise _missing_column(f"{path}:{number}", column, record)
        values.append(record[column])
    return values


def _json_column(path: Path, column: str) -> list[Any]:
    """A list of records, a dict of columns, or a dict holding one list of records."""
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError:
        return _jsonl_column(path, column)  # JSON Lines saved with a .json suffix
    if isinstance(data, dict):
        if isinstance(data.get(column), list):
            return data[column]
        nested = [v for v in data.values() if isinstance(v, list) and v and _all_dicts(v)]
        if len(nested) != 1:
            raise _missing_column(path, column, data)
        data = nested[0]
    if not isinstance(data, list) or not _all_dicts(data):
        raise ValueError(f"{path}: expected a list of JSON objects or a dict of columns")
    for number, record in enumerate(data):
        if column not in record:
            raise _missing_column(f"{path} (record {number})", column, record)
    return [record[column] for record in data]


def _all_dicts(items: list[Any]) -> bool:
    return all(isinstance(item, dict) for item in items)


def _parquet_column(path: Path, column: str) -> list[Any]:
    names = pq.read_schema(path).names
    if column not in names:
        raise _missing_column(path, column, names)
    return pq.read_table(path, columns=[column]).column(column).to_pylist()


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


# --------------------------------------------------------------------------- tokenizing


def tokenize_and_chunk(
    ds: datasets.Dataset,
    tokenizer: Any,
    seq_len: int,
    *,
    add_eos: bool = True,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Blocks of exactly ``seq_len`` token ids from the concatenated texts (``input_ids``).

    Each text is tokenized without special tokens and followed by ``eos_token_id`` (when
    ``add_eos`` and the tokenizer has one). The stream is cut per map batch of 1000 texts, so
    up to ``seq_len - 1`` tokens per batch are dropped.
    """
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    _require_text(ds)
    eos_id = tokenizer.eos_token_id if add_eos else None
    return ds.map(
        _chunk_batch,
        batched=True,
        remove_columns=ds.column_names,
        features=IDS_FEATURES,
        num_proc=num_proc,
        fn_kwargs={"tokenizer": tokenizer, "seq_len": seq_len, "eos_id": eos_id},
        desc=f"Tokenizing into {seq_len}-token blocks",
    )


def tokenize_texts(
    ds: datasets.Dataset,
    tokenizer: Any,
    max_len: int,
    *,
    prompt: str = "",
    add_special_tokens: bool = False,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """One ``input_ids`` row per text, truncated to ``max_len``; texts under 2 tokens dropped.

    ``prompt`` is prepended to each text as a string and ``add_special_tokens=True`` lets the
    tokenizer add its BOS: together they reproduce what ``GEMModel.encode`` feeds the model.
    No eos is added (the contrastive stage appends the GEM tokens itself).
    """
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2, got {max_len}")
    _require_text(ds)
    return ds.map(
        _truncate_batch,
        batched=True,
        remove_columns=ds.column_names,
        features=IDS_FEATURES,
        num_proc=num_proc,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_len": max_len,
            "prompt": prompt,
            "add_special_tokens": add_special_tokens,
        },
        desc=f"Tokenizing texts (max {max_len} tokens)",
    )


def _require_text(ds: datasets.Dataset) -> None:
    if TEXT not in ds.column_names:
        raise _missing_column("dataset", TEXT, ds.column_names)


def _token_ids(
    tokenizer: Any, texts: list[str], add_special_tokens: bool = False
) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=add_special_tokens, verbose=False)["input_ids"]


def _chunk_batch(
    batch: dict[str, list], tokenizer: Any, seq_len: int, eos_id: int | None
) -> dict[str, list[list[int]]]:
    stream: list[int] = []
    for ids in _token_ids(tokenizer, batch[TEXT]):
        stream.extend(ids)
        if eos_id is not None:
            stream.append(eos_id)
    n_blocks = len(stream) // seq_len
    return {IDS: [stream[i * seq_len : (i + 1) * seq_len] for i in range(n_blocks)]}


def _truncate_batch(
    batch: dict[str, list], tokenizer: Any, max_len: int, prompt: str, add_special_tokens: bool
) -> dict[str, list[list[int]]]:
    ids = _token_ids(tokenizer, [prompt + t for t in batch[TEXT]], add_special_tokens)
    return {IDS: [x[:max_len] for x in ids if len(x) >= 2]}
