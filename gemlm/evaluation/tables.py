"""Read the files of one :class:`TableSpec` into rows of {role: value}.

A table is one or more files (a list, or globs expanded in name order) read one after another:
csv/tsv with the csv module (quoted fields may hold delimiters and newlines), JSON lines, text
lines split on their last delimiters, or ``line_files`` (a folder with one file per role, one
item per line, all of the same length). A UTF-8 byte-order mark is dropped. Column names are
looked up in each file's own header. ``where`` keeps the rows whose column is one of the allowed
values. Problems raise :class:`SpecError` naming the spec and the field.
"""

from __future__ import annotations

import csv
import glob
import json
import re
from pathlib import Path
from typing import Any

from .specs import SpecError, TableSpec, TaskSpec

csv.field_size_limit(2**31 - 1)
ENCODING = "utf-8-sig"  # utf-8, dropping a byte-order mark at the start of a file


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def table_paths(table: TableSpec, data: Path, spec: TaskSpec) -> list[Path]:
    """The files (folders for ``line_files``) of ``table`` under ``data``, in reading order."""
    want_dir = table.format == "line_files"
    out: list[Path] = []
    for pattern in table.files:
        if _is_glob(pattern):
            base = "" if Path(pattern).is_absolute() else glob.escape(str(data)) + "/"
            found = [Path(p) for p in sorted(glob.glob(base + pattern, recursive=True))]
            found = [p for p in found if (p.is_dir() if want_dir else p.is_file())]
            if not found:
                raise SpecError(
                    spec.source_file, table.field_path, f"no file matches {pattern!r} in {data}"
                )
            out += found
        elif (data / pattern).is_dir() if want_dir else (data / pattern).is_file():
            out.append(data / pattern)
        else:
            kind = "folder" if want_dir else "file"
            raise SpecError(
                spec.source_file, table.field_path, f"{kind} not found: {data / pattern}"
            )
    return out


def check_files(spec: TaskSpec, data: Path) -> None:
    """Every file the spec names exists under ``data``; else a SpecError naming the field."""
    tables: list[TableSpec] = [*spec.splits.values()]
    tables += [t for t in (spec.corpus, spec.queries, spec.qrels) if t is not None]
    for table in tables:
        for folder in table_paths(table, data, spec):
            if table.format != "line_files":
                continue
            for role, name in table.columns.items():
                if not (folder / str(name)).is_file():
                    raise SpecError(
                        spec.source_file, f"columns.{role}", f"file not found: {folder / name}"
                    )
    if spec.source == "beir" and spec.type == "retrieval":
        for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{spec.eval_split}.tsv"):
            if not (data / spec.path / name).is_file():
                raise SpecError(
                    spec.source_file, "path", f"file not found: {data / spec.path / name}"
                )
    if spec.source == "squad" and spec.type == "retrieval" and not (data / spec.path).is_file():
        raise SpecError(spec.source_file, "path", f"file not found: {data / spec.path}")


def read_table(table: TableSpec, data: Path, spec: TaskSpec) -> tuple[list[dict[str, Any]], int]:
    """Rows of ``table`` as {role: value}, and how many rows ``where`` dropped."""
    rows: list[dict[str, Any]] = []
    dropped = 0
    for path in table_paths(table, data, spec):
        if table.format == "line_files":
            records = _line_files(table, path, spec)
        else:
            header, cells = _read_cells(table, path)
            records = _records(table, spec, path, header, cells)
        kept = [r for r in records if _keep(table, r)]
        dropped += len(records) - len(kept)
        rows += [{role: r[role] for role in table.columns} for r in kept]
    if table.text_parse == "sentence_list":
        for row in rows:
            if "text" in row:
                row["text"] = sentence_list(row["text"] or "")
    return rows, dropped


def _read_cells(table: TableSpec, path: Path) -> tuple[list[Any], list[list[Any]]]:
    """(header, rows of cells) of one csv/tsv/jsonl/lines file; blank lines are not rows."""
    if table.format == "jsonl":
        records = [json.loads(line) for line in _lines(path) if line.strip()]
        header = list(records[0]) if records else []
        return header, [[r.get(h) for h in header] for r in records]
    if table.format == "lines":
        raw = [line for line in _lines(path) if line.strip()]
        ncols = max(len(table.columns), 1)
        header = raw.pop(0).rsplit(table.sep, ncols - 1) if table.header and raw else []
        return header, [line.rsplit(table.sep, ncols - 1) for line in raw]  # the LAST delimiters
    quoting = csv.QUOTE_MINIMAL if table.quotes else csv.QUOTE_NONE
    with open(path, newline="", encoding=ENCODING) as f:
        rows = [r for r in csv.reader(f, delimiter=table.sep, quoting=quoting) if r]
    header = rows.pop(0) if table.header and rows else []
    return header, rows


def _records(
    table: TableSpec, spec: TaskSpec, path: Path, header: list[Any], cells: list[list[Any]]
) -> list[dict[Any, Any]]:
    """{role: value} per row, plus {("where", column): value} for every ``where`` column."""
    index = {
        role: _column(col, f"columns.{role}", spec, path, header, cells)
        for role, col in table.columns.items()
    }
    for col in table.where:
        if (header and col in header) or isinstance(col, int) or col not in table.columns:
            index[("where", col)] = _column(col, f"where.{col}", spec, path, header, cells)
        else:  # a role named in `columns`
            index[("where", col)] = index[col]
    return [{key: (r[i] if i < len(r) else None) for key, i in index.items()} for r in cells]


def _column(
    col: Any, field: str, spec: TaskSpec, path: Path, header: list[Any], cells: list[list[Any]]
) -> int:
    """The 0-based index of column ``col`` (a header name or an index) in ``path``."""
    if isinstance(col, int) and not isinstance(col, bool):
        width = min((len(r) for r in cells), default=0)
        if col >= width and cells:
            raise SpecError(
                spec.source_file, field, f"column index {col} not in {path} ({width} columns)"
            )
        return col
    if header and col in header:
        return header.index(col)
    have = header if header else "no header: use 0-based column indices"
    raise SpecError(spec.source_file, field, f"column {col!r} not in {path} (has: {have})")


def _line_files(table: TableSpec, folder: Path, spec: TaskSpec) -> list[dict[Any, Any]]:
    """Rows from one file per role in ``folder``, item i of every file forming row i."""
    items = {role: _items(folder / str(name), table.header) for role, name in table.columns.items()}
    if len({len(v) for v in items.values()}) > 1:
        counts = ", ".join(f"{folder / str(table.columns[r])}: {len(v)}" for r, v in items.items())
        raise SpecError(
            spec.source_file, table.field_path, f"line files differ in length ({counts} lines)"
        )
    for col in table.where:
        if col not in table.columns:
            raise SpecError(
                spec.source_file,
                f"where.{col}",
                f"line_files: not a role of columns {sorted(table.columns)}",
            )
    n = len(next(iter(items.values()), []))
    rows = [{role: values[i] for role, values in items.items()} for i in range(n)]
    for r in rows:
        r.update({("where", col): r[col] for col in table.where})
    return rows


def _items(path: Path, header: bool) -> list[str]:
    """One item per line (only ``\\n`` ends a line; empty lines are items)."""
    with open(path, newline="", encoding=ENCODING) as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    return lines[1:] if header else lines


def _keep(table: TableSpec, record: dict[Any, Any]) -> bool:
    for col, allowed in table.where.items():
        value = record[("where", col)]
        if ("" if value is None else str(value).strip()) not in allowed:
            return False
    return True


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding=ENCODING).splitlines()


def sentence_list(value: str) -> str:
    """A Python/numpy-style list of quoted sentences joined with spaces.

    >>> sentence_list("['One.' 'Two \\"x\\".'\\n \\"It's three.\\"]")
    'One. Two "x". It\\'s three.'
    """
    value = value.strip()
    if not value.startswith("["):
        return value
    parts = re.findall(r"'((?:[^'\\]|\\.|'(?![\s\]]))*)'|\"((?:[^\"\\]|\\.)*)\"", value)
    return " ".join((a or b).replace("\\'", "'").replace('\\"', '"') for a, b in parts).strip()
