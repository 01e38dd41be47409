"""Reading corpus files: plain text (lines or blank-line paragraphs), WikiExtractor articles,
JSON / JSONL / Parquet text columns, and folders of these; encodings sniffed, blanks dropped."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

STRUCTURED = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
FILE_SUFFIXES = {".txt", ".text", ".md", ".csv", ".tsv", ".gz", ".bz2", ".zip", *STRUCTURED}
SNIFF_BYTES = 4096
WIKI_TITLE = re.compile(r'\btitle="([^"]*)"')


def missing_column(where: object, column: str, existing: Iterable[str]) -> ValueError:
    cols = ", ".join(repr(c) for c in sorted(existing)) or "none"
    return ValueError(
        f"{where}: no column {column!r} (columns: {cols}); pass text_column= to pick one"
    )


# --------------------------------------------------------------------------- files


def read_folder(folder: Path, column: str, min_words: int) -> list[str]:
    """All usable files under ``folder`` (recursively, sorted, hidden ones skipped)."""
    files = folder_files(folder)
    if not files:
        raise ValueError(
            f"{folder}: no text files found (expected WikiExtractor output or "
            ".txt/.jsonl/.json/.parquet files, or a Dataset.save_to_disk folder)"
        )
    texts: list[str] = []
    for path, fmt in files:
        texts.extend(read_file(path, fmt, column, min_words))
    return texts


def folder_files(folder: Path) -> list[tuple[Path, str]]:
    """(path, format) of the files ``read_folder`` reads; other files are skipped."""
    found = []
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if hidden or not path.is_file():
            continue
        fmt = file_format(path)
        if fmt in ("wiki", "jsonl", "json", "parquet") or (fmt == "text" and path.suffix == ".txt"):
            found.append((path, fmt))
    return found


def file_format(path: Path) -> str | None:
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


def read_file(path: Path, fmt: str | None, column: str, min_words: int) -> list[str]:
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
            raise missing_column(f"{path}:{number}", column, record)
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
            raise missing_column(path, column, data)
        data = nested[0]
    if not isinstance(data, list) or not _all_dicts(data):
        raise ValueError(f"{path}: expected a list of JSON objects or a dict of columns")
    for number, record in enumerate(data):
        if column not in record:
            raise missing_column(f"{path} (record {number})", column, record)
    return [record[column] for record in data]


def _all_dicts(items: list[Any]) -> bool:
    return all(isinstance(item, dict) for item in items)


def _parquet_column(path: Path, column: str) -> list[Any]:
    names = pq.read_schema(path).names
    if column not in names:
        raise missing_column(path, column, names)
    return pq.read_table(path, columns=[column]).column(column).to_pylist()
