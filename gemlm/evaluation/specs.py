"""Task specs: small YAML/JSON files that declare an embedding task over local files.

A spec names a task type (one of :data:`TASK_TYPES`), the files of each split (relative to the
data directory), how to read them (format, delimiter, header) and which column plays which role.
New datasets need a spec, not code. Structural problems (unknown type or key, missing field) are
reported here by :func:`load_spec`; files and content (missing file or column, one class, score
out of range, empty split, line files of different lengths, a label missing from ``label_map``)
by :mod:`gemlm.evaluation.tables` and :mod:`gemlm.evaluation.readers`. All raise
:class:`SpecError` naming the spec file and the field, before any model is loaded.

Table keys (per split, or at the top level as defaults for every split)::

    file: train.csv                # or a list [a.csv, b.csv], or a glob "shards/train-*.csv":
                                   # files concatenated in order (a glob's matches sorted by name)
    format: csv                    # csv | tsv | jsonl | lines | line_files (guessed from suffix)
    delimiter: ","                 # csv/tsv/lines; `lines` splits on the LAST delimiters
    header: true                   # false: columns are 0-based indices (line_files: false)
    quotes: true                   # csv/tsv: "..." quotes fields (delimiters, newlines inside);
                                   # false: quotes are plain text (TSV exports with stray quotes)
    columns: {text: body, label: 2}          # role -> column name or index
    where: {lang: en, split: [train, dev]}   # keep rows whose column (name, index or role)
                                             # is one of the values (as text, before label_map)

``format: line_files``: ``file`` is a folder and ``columns`` maps each role to a file in it with
one item per line (a.txt / b.txt / scores.txt); every file must have the same number of lines.
A UTF-8 byte-order mark at the start of any file is dropped. Task keys::

    label_map: {0: sadness, 1: joy}   # raw label (as text) -> label; every label must be mapped
    train_sample: {n: 2000, seed: 0}  # classification: a seeded subset of the train split
    sample: {n: 1000, seed: 0}        # a seeded subset of the eval split (retrieval: queries)

Rows with an empty text, sentence, label or score are skipped and counted (the report lists
them per split); rows dropped by ``where`` are counted too. An STS task from line files::

    name: SICK-R
    type: sts
    format: line_files
    columns: {sentence1: a.txt, sentence2: b.txt, score: scores.txt}
    splits: {test: sick/test}
    score_range: [1, 5]

>>> spec = parse_spec({"name": "T", "type": "sts", "splits": {"test": "a.csv"},
...     "columns": {"sentence1": 0, "sentence2": 1, "score": 2}, "score_range": [0, 5]}, "t.yaml")
>>> spec.type, spec.splits["test"].files, spec.splits["test"].columns["score"]
('sts', ['a.csv'], 2)
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
FORMATS = ("csv", "tsv", "jsonl", "lines", "line_files")
RETRIEVAL_SOURCES = ("beir", "squad", "tables")
TABLE_KEYS = {"file", "format", "delimiter", "header", "quotes", "columns", "where", "text_parse"}
DEFAULT_KEYS = TABLE_KEYS - {"file"}
SPEC_KEYS = DEFAULT_KEYS | {
    *("name", "type", "description", "main_score", "eval_split", "splits", "score_range"),
    *("sample", "train_sample", "label_map", "options", "max_chars"),
    *("source", "path", "corpus", "queries", "qrels", "corpus_sample"),
}


class SpecError(ValueError):
    """A task spec that cannot be used; the message names the spec file and the field."""

    def __init__(self, spec: str | Path, field_name: str, problem: str) -> None:
        super().__init__(f"{spec}: field '{field_name}': {problem}")
        self.spec, self.field, self.problem = str(spec), field_name, problem


@dataclass
class TableSpec:
    """Delimited/JSONL/line files and the roles of their columns (names, or indices)."""

    files: list[str]  # paths or globs relative to the data dir, concatenated in order
    format: str = "csv"
    delimiter: str | None = None
    header: bool = True
    quotes: bool = True
    columns: dict[str, str | int] = field(default_factory=dict)
    where: dict[str | int, set[str]] = field(default_factory=dict)  # column -> allowed values
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
    train_sample: Sample | None = None  # of the train split (classification)
    label_map: dict[str, str | int] | None = None  # raw label text -> label
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


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _table(raw: Any, defaults: dict[str, Any], where: str, name: str) -> TableSpec:
    """A table from a file name or list of files (inheriting ``defaults``) or a mapping."""
    if isinstance(raw, str | list):
        raw = {"file": raw}
    if not isinstance(raw, dict):
        raise SpecError(where, name, f"must be a file name or a mapping, got {type(raw).__name__}")
    unknown = set(raw) - TABLE_KEYS
    if unknown:
        raise SpecError(
            where, f"{name}.{sorted(unknown)[0]}", f"unknown key (known: {sorted(TABLE_KEYS)})"
        )
    merged = {**defaults, **raw}
    files = _files(merged.get("file"), where, f"{name}.file")
    fmt = merged.get("format") or _guess_format(files[0])
    if fmt not in FORMATS:
        raise SpecError(where, f"{name}.format", f"unknown format {fmt!r} (known: {FORMATS})")
    columns = merged.get("columns") or {}
    if not isinstance(columns, dict):
        raise SpecError(where, f"{name}.columns", "must map roles to column names or indices")
    if fmt == "line_files":
        for role, col in columns.items():
            if not isinstance(col, str) or not col:
                raise SpecError(where, f"columns.{role}", "line_files: must be a file name")
    return TableSpec(
        files=files,
        format=fmt,
        delimiter=merged.get("delimiter"),
        header=bool(merged.get("header", fmt != "line_files")),
        quotes=bool(merged.get("quotes", True)),
        columns=dict(columns),
        where=_where(merged.get("where"), where),
        text_parse=merged.get("text_parse"),
        field_path=name,
    )


def _files(raw: Any, where: str, name: str) -> list[str]:
    """``file`` as a list of paths or globs (relative to the data dir)."""
    files = raw if isinstance(raw, list) else [raw]
    if not files or not all(isinstance(f, str) and f for f in files):
        raise SpecError(
            where, name, "is required: a path relative to the data dir, a glob or a list of them"
        )
    return list(files)


def _where(raw: Any, where: str) -> dict[str | int, set[str]]:
    """``where: {column: value or [values]}`` -> {column: allowed values as text}."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise SpecError(where, "where", "must map columns to a value or a list of values")
    out: dict[str | int, set[str]] = {}
    for col, values in raw.items():
        values = values if isinstance(values, list) else [values]
        if not values or not all(_scalar(v) for v in values):
            raise SpecError(where, f"where.{col}", f"must be a value or a list, got {values!r}")
        out[col] = {str(v).strip() for v in values}
    return out


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


def _label_map(raw: Any, task_type: str, where: str) -> dict[str, str | int] | None:
    """``label_map: {raw: label}`` with the raw labels as text (YAML may give ints)."""
    if raw is None:
        return None
    if "label" not in TASK_TYPES[task_type][0]:
        raise SpecError(where, "label_map", f"a {task_type} task has no label column")
    if not isinstance(raw, dict) or not raw:
        raise SpecError(where, "label_map", "must map raw labels to labels, e.g. {0: sadness}")
    for key, value in raw.items():
        if not _scalar(key) or not isinstance(value, str | int) or isinstance(value, bool):
            raise SpecError(where, f"label_map.{key}", f"must map to a name or an int: {value!r}")
    return {str(k).strip(): v for k, v in raw.items()}


def parse_spec(raw: Any, where: str | Path = "<spec>") -> TaskSpec:
    """Validate the structure of one spec mapping (files are checked when read)."""
    where = str(where)
    if not isinstance(raw, dict):
        raise SpecError(where, "<root>", "a spec must be a mapping")
    name = _require(raw, "name", where, str)
    task_type = _require(raw, "type", where, str)
    if task_type not in TASK_TYPES:
        raise SpecError(
            where, "type", f"unknown task type {task_type!r} (known: {list(TASK_TYPES)})"
        )
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        raise SpecError(where, unknown[0], f"unknown key (known: {sorted(SPEC_KEYS)})")
    roles, needed_splits, default_score = TASK_TYPES[task_type]
    spec = TaskSpec(
        name=name,
        type=task_type,
        source_file=where,
        description=str(raw.get("description", "")),
        main_score=str(raw.get("main_score") or default_score),
        eval_split=str(raw.get("eval_split", "test")),
        sample=_sample(raw.get("sample"), where, "sample"),
        train_sample=_sample(raw.get("train_sample"), where, "train_sample"),
        label_map=_label_map(raw.get("label_map"), task_type, where),
        max_chars=raw.get("max_chars"),
        options=dict(raw.get("options") or {}),
    )
    if spec.train_sample and (task_type != "classification" or not spec.train_sample.n):
        raise SpecError(where, "train_sample", "is {n, seed} of a classification train split")
    if task_type == "retrieval":
        _parse_retrieval(raw, spec, where)
        return spec
    defaults = {k: raw[k] for k in DEFAULT_KEYS if k in raw}
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
    text = path.read_text(encoding="utf-8-sig")
    raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if overrides and isinstance(raw, dict):
        raw = {**raw, **overrides}
    return parse_spec(raw, path)
