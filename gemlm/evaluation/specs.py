"""Task specs: small YAML/JSON files that declare an embedding task over local files.

A spec names a task type (one of :data:`TASK_TYPES`), the files of each split (relative to the
data directory), how to read them (format, delimiter, header) and which column plays which role.
New datasets need a spec, not code. Structural problems (unknown type, missing field, missing
file) are reported here by :func:`load_spec`; content problems (missing column, one class, score
out of range, empty split) by :mod:`gemlm.evaluation.readers`. Both raise :class:`SpecError`
naming the spec file and the field, before any model is loaded.

>>> spec = parse_spec({"name": "T", "type": "sts", "splits": {"test": "a.csv"},
...     "columns": {"sentence1": 0, "sentence2": 1, "score": 2}, "score_range": [0, 5]}, "t.yaml")
>>> spec.type, spec.splits["test"].file, spec.splits["test"].columns["score"]
('sts', 'a.csv', 2)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SPECS_DIR = Path(__file__).parent / "specs"

# type -> (roles every table needs, splits the task needs, default main score)
TASK_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "sts": (("sentence1", "sentence2", "score"), ("test",), "cosine_spearman"),
    "classification": (("text", "label"), ("train", "test"), "accuracy"),
    "pair_classification": (("sentence1", "sentence2", "label"), ("test",), "max_ap"),
    "clustering": (("text", "label"), ("test",), "v_measure"),
    "retrieval": ((), (), "ndcg_at_10"),
}
FORMATS = ("csv", "tsv", "jsonl", "lines")
RETRIEVAL_SOURCES = ("beir", "squad", "tables")
TABLE_KEYS = {"file", "format", "delimiter", "header", "columns", "text_parse"}


class SpecError(ValueError):
    """A task spec that cannot be used; the message names the spec file and the field."""

    def __init__(self, spec: str | Path, field_name: str, problem: str) -> None:
        super().__init__(f"{spec}: field '{field_name}': {problem}")
        self.spec, self.field, self.problem = str(spec), field_name, problem


@dataclass
class TableSpec:
    """One delimited/JSONL file and the roles of its columns (names, or indices without header)."""

    file: str
    format: str = "csv"
    delimiter: str | None = None
    header: bool = True
    columns: dict[str, str | int] = field(default_factory=dict)
    text_parse: str | None = None  # "sentence_list": a Python-list-like string of sentences
    field_path: str = ""  # where it was declared, for error messages

    @property
    def sep(self) -> str:
        return self.delimiter or {"tsv": "\t", "lines": "\t"}.get(self.format, ",")


@dataclass
class Sample:
    """A fixed, seeded subset: ``n`` rows (or queries), or ``distractors`` extra documents."""

    n: int | None = None
    seed: int = 0
    distractors: int | None = None


@dataclass
class TaskSpec:
    """One embedding task read from local files (see the module docstring)."""

    name: str
    type: str
    source_file: str
    description: str = ""
    main_score: str = ""
    eval_split: str = "test"
    splits: dict[str, TableSpec] = field(default_factory=dict)
    score_range: tuple[float, float] | None = None
    sample: Sample | None = None  # of the eval split (table tasks) or of the queries (retrieval)
    # retrieval
    source: str = "tables"
    path: str = ""  # beir folder or squad json
    corpus: TableSpec | None = None
    queries: TableSpec | None = None
    qrels: TableSpec | None = None
    corpus_sample: Sample | None = None
    max_chars: int | None = None  # documents cut to this many characters
    # classification / clustering knobs passed to mteb
    options: dict[str, Any] = field(default_factory=dict)


def _require(raw: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in raw:
        raise SpecError(where, key, "is required")
    value = raw[key]
    if not isinstance(value, kind):
        raise SpecError(where, key, f"must be {_kind(kind)}, got {type(value).__name__}")
    return value


def _kind(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _table(raw: Any, defaults: dict[str, Any], where: str, name: str) -> TableSpec:
    """A table from a file name (inheriting ``defaults``) or a mapping."""
    if isinstance(raw, str):
        raw = {"file": raw}
    if not isinstance(raw, dict):
        raise SpecError(where, name, f"must be a file name or a mapping, got {type(raw).__name__}")
    unknown = set(raw) - TABLE_KEYS
    if unknown:
        raise SpecError(
            where, f"{name}.{sorted(unknown)[0]}", f"unknown key (known: {sorted(TABLE_KEYS)})"
        )
    merged = {**defaults, **raw}
    file = merged.get("file")
    if not isinstance(file, str) or not file:
        raise SpecError(where, f"{name}.file", "is required (a path relative to the data dir)")
    fmt = merged.get("format") or _guess_format(file)
    if fmt not in FORMATS:
        raise SpecError(where, f"{name}.format", f"unknown format {fmt!r} (known: {FORMATS})")
    columns = merged.get("columns") or {}
    if not isinstance(columns, dict):
        raise SpecError(where, f"{name}.columns", "must map roles to column names or indices")
    header = merged.get("header", True)
    return TableSpec(
        file=file,
        format=fmt,
        delimiter=merged.get("delimiter"),
        header=bool(header),
        columns=dict(columns),
        text_parse=merged.get("text_parse"),
        field_path=name,
    )


def _guess_format(file: str) -> str:
    suffix = Path(file).suffix.lower()
    return {".tsv": "tsv", ".jsonl": "jsonl", ".txt": "lines"}.get(suffix, "csv")


def _sample(raw: Any, where: str, name: str) -> Sample | None:
    if raw is None:
        return None
    if isinstance(raw, int):
        raw = {"n": raw}
    if not isinstance(raw, dict) or set(raw) - {"n", "seed", "distractors"}:
        raise SpecError(where, name, "must be an int or a mapping with n, seed, distractors")
    for key in ("n", "distractors"):
        if raw.get(key) is not None and (not isinstance(raw[key], int) or raw[key] < 1):
            raise SpecError(where, f"{name}.{key}", f"must be a positive int, got {raw[key]!r}")
    return Sample(n=raw.get("n"), seed=int(raw.get("seed", 0)), distractors=raw.get("distractors"))


def parse_spec(raw: Any, where: str | Path = "<spec>") -> TaskSpec:
    """Validate the structure of one spec mapping (files are checked by :func:`check_files`)."""
    where = str(where)
    if not isinstance(raw, dict):
        raise SpecError(where, "<root>", "a spec must be a mapping")
    name = _require(raw, "name", where, str)
    task_type = _require(raw, "type", where, str)
    if task_type not in TASK_TYPES:
        raise SpecError(
            where, "type", f"unknown task type {task_type!r} (known: {list(TASK_TYPES)})"
        )
    roles, needed_splits, default_score = TASK_TYPES[task_type]
    spec = TaskSpec(
        name=name,
        type=task_type,
        source_file=where,
        description=str(raw.get("description", "")),
        main_score=str(raw.get("main_score") or default_score),
        eval_split=str(raw.get("eval_split", "test")),
        sample=_sample(raw.get("sample"), where, "sample"),
        max_chars=raw.get("max_chars"),
        options=dict(raw.get("options") or {}),
    )
    if task_type == "retrieval":
        _parse_retrieval(raw, spec, where)
        return spec
    defaults = {k: raw[k] for k in ("format", "delimiter", "header", "columns") if k in raw}
    splits = raw.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise SpecError(where, "splits", "must map split names to files, e.g. {test: x.csv}")
    spec.splits = {s: _table(t, defaults, where, f"splits.{s}") for s, t in splits.items()}
    for split in (*needed_splits, spec.eval_split):
        if split not in spec.splits:
            raise SpecError(where, "splits", f"a {task_type} task needs a {split!r} split")
    for split, table in spec.splits.items():
        for role in roles:
            if role not in table.columns:
                raise SpecError(
                    where, "columns", f"split {split!r} does not name the {role!r} column"
                )
    if task_type == "sts":
        rng = raw.get("score_range")
        if not (isinstance(rng, list | tuple) and len(rng) == 2 and rng[0] < rng[1]):
            raise SpecError(where, "score_range", f"must be [min, max] with min < max, got {rng!r}")
        spec.score_range = (float(rng[0]), float(rng[1]))
    return spec


def _parse_retrieval(raw: dict[str, Any], spec: TaskSpec, where: str) -> None:
    source = raw.get("source", "tables")
    if source not in RETRIEVAL_SOURCES:
        raise SpecError(
            where, "source", f"unknown retrieval source {source!r} ({RETRIEVAL_SOURCES})"
        )
    spec.source = source
    spec.corpus_sample = _sample(raw.get("corpus_sample"), where, "corpus_sample")
    if source in ("beir", "squad"):
        spec.path = _require(raw, "path", where, str)
        return
    for part, roles in (
        ("corpus", ("id", "text")),
        ("queries", ("id", "text")),
        ("qrels", ("query", "doc")),
    ):
        table = _table(raw.get(part), {}, where, part)
        for role in roles:
            if role not in table.columns:
                raise SpecError(where, f"{part}.columns", f"does not name the {role!r} column")
        setattr(spec, part, table)


def check_files(spec: TaskSpec, data: Path) -> None:
    """Every file the spec names exists under ``data``; else a SpecError naming the field."""
    tables: list[TableSpec] = [*spec.splits.values()]
    tables += [t for t in (spec.corpus, spec.queries, spec.qrels) if t is not None]
    for table in tables:
        if not (data / table.file).is_file():
            raise SpecError(
                spec.source_file, table.field_path, f"file not found: {data / table.file}"
            )
    if spec.source == "beir" and spec.type == "retrieval":
        for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{spec.eval_split}.tsv"):
            if not (data / spec.path / name).is_file():
                raise SpecError(
                    spec.source_file, "path", f"file not found: {data / spec.path / name}"
                )
    if spec.source == "squad" and spec.type == "retrieval" and not (data / spec.path).is_file():
        raise SpecError(spec.source_file, "path", f"file not found: {data / spec.path}")


def load_spec(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> TaskSpec:
    """A shipped spec by name (``specs/<name>.yaml``) or a YAML/JSON file; ``overrides``
    replace top-level fields (a suite's subset choices)."""
    path = Path(name_or_path)
    if not path.is_file():
        shipped = SPECS_DIR / f"{name_or_path}.yaml"
        if not shipped.is_file():
            known = sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))
            raise SpecError(
                str(name_or_path), "<file>", f"no such spec file or shipped spec {known}"
            )
        path = shipped
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if overrides and isinstance(raw, dict):
        raw = {**raw, **overrides}
    return parse_spec(raw, path)
