"""Read the local files a :class:`TaskSpec` names into plain Python rows, checking the content.

Every problem raises :class:`SpecError` naming the spec and the field: a column the file does not
have, an empty split, a label column with a single class (or a non-binary pair label), a score
outside the declared range. :func:`read_task` runs for every task before any model is loaded.
"""

from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .specs import SpecError, TableSpec, TaskSpec, check_files

csv.field_size_limit(2**31 - 1)


@dataclass
class TaskData:
    """What an mteb task needs: rows per split (table tasks) or corpus/queries/qrels."""

    spec: TaskSpec
    splits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    corpus: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {title, text}
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """Row counts, for the report."""
        if self.spec.type == "retrieval":
            return {"queries": len(self.queries), "corpus": len(self.corpus)}
        return {split: len(rows) for split, rows in self.splits.items()}


def read_table(table: TableSpec, data: Path, spec: TaskSpec) -> list[dict[str, Any]]:
    """Rows of ``table`` as {role: value}; a missing column raises naming ``columns.<role>``."""
    path = data / table.file
    if table.format == "jsonl":
        records = [json.loads(line) for line in _lines(path) if line.strip()]
        header = list(records[0]) if records else []
        rows = [[r.get(h) for h in header] for r in records]
    elif table.format == "lines":
        raw = [line for line in _lines(path) if line.strip()]
        ncols = max(len(table.columns), 1)
        if table.header and raw:
            header = raw[0].rsplit(table.sep, ncols - 1)
            raw = raw[1:]
        else:
            header = []
        rows = [line.rsplit(table.sep, ncols - 1) for line in raw]  # split on the LAST delimiters
    else:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f, delimiter=table.sep) if r]
        header = rows.pop(0) if table.header and rows else []
    index = {}
    for role, col in table.columns.items():
        if isinstance(col, int) and not isinstance(col, bool):
            width = min((len(r) for r in rows), default=0)
            if col >= width and rows:
                raise SpecError(
                    spec.source_file,
                    f"columns.{role}",
                    f"column index {col} not in {path} ({width} columns)",
                )
            index[role] = col
        elif header and col in header:
            index[role] = header.index(col)
        else:
            have = header if header else "no header: use 0-based column indices"
            raise SpecError(
                spec.source_file, f"columns.{role}", f"column {col!r} not in {path} (has: {have})"
            )
    out = []
    for r in rows:
        row = {role: (r[i] if i < len(r) else None) for role, i in index.items()}
        if table.text_parse == "sentence_list" and "text" in row:
            row["text"] = sentence_list(row["text"] or "")
        out.append(row)
    return out


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


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


def read_task(spec: TaskSpec, data: Path, limit: int | None = None) -> TaskData:
    """Read and check every file of ``spec``; apply the spec's subset, then ``limit``."""
    check_files(spec, data)
    if spec.type == "retrieval":
        return _read_retrieval(spec, data, limit)
    task = TaskData(spec)
    for split, table in spec.splits.items():
        rows = read_table(table, data, spec)
        if not rows:
            raise SpecError(spec.source_file, f"splits.{split}", f"{data / table.file} has no rows")
        task.splits[split] = _check_rows(spec, split, rows)
    ev = spec.eval_split
    if spec.sample and spec.sample.n:
        task.splits[ev] = _subset(task.splits[ev], spec.sample.n, spec.sample.seed)
    if limit:
        task.splits[ev] = _subset(task.splits[ev], limit, 0)
        if spec.type == "classification":  # keep every class reachable in a small train set
            task.splits["train"] = _subset(task.splits["train"], max(8 * limit, 200), 0)
    return task


def _subset(rows: list[Any], n: int, seed: int) -> list[Any]:
    """A fixed seeded sample of ``n`` rows, in the original order."""
    if n >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


def _check_rows(spec: TaskSpec, split: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    where = spec.source_file
    for role in ("text", "sentence1", "sentence2"):
        for i, r in enumerate(rows):
            if role in r and not isinstance(r[role], str):
                raise SpecError(where, f"columns.{role}", f"split {split!r} row {i}: no text")
    if spec.type == "sts":
        lo, hi = spec.score_range or (0.0, 5.0)
        for i, r in enumerate(rows):
            try:
                r["score"] = float(r["score"])
            except (TypeError, ValueError):
                raise SpecError(
                    where, "columns.score", f"split {split!r} row {i}: not a number: {r['score']!r}"
                ) from None
            if not lo <= r["score"] <= hi:
                raise SpecError(
                    where,
                    "score_range",
                    f"split {split!r} row {i}: score {r['score']} outside [{lo}, {hi}]",
                )
    if spec.type in ("classification", "clustering"):
        classes = {str(r["label"]) for r in rows}
        if len(classes) < 2 and (spec.type == "clustering" or split == "train"):
            raise SpecError(where, "columns.label", f"split {split!r} has a single class {classes}")
        for r in rows:
            r["label"] = str(r["label"])
    if spec.type == "pair_classification":
        for i, r in enumerate(rows):
            label = str(r["label"]).strip().lower()
            if label not in ("0", "1", "true", "false", "0.0", "1.0"):
                raise SpecError(
                    where,
                    "columns.label",
                    f"split {split!r} row {i}: not a binary label: {r['label']!r}",
                )
            r["label"] = int(label in ("1", "true", "1.0"))
        if len({r["label"] for r in rows}) < 2:
            raise SpecError(where, "columns.label", f"split {split!r} has a single class")
    return rows


def _read_retrieval(spec: TaskSpec, data: Path, limit: int | None) -> TaskData:
    task = TaskData(spec)
    if spec.source == "squad":
        _read_squad(task, data / spec.path)
    elif spec.source == "beir":
        _read_beir(task, data / spec.path)
    else:
        assert spec.corpus and spec.queries and spec.qrels
        for r in read_table(spec.corpus, data, spec):
            task.corpus[str(r["id"])] = {"title": r.get("title") or "", "text": r["text"] or ""}
        for r in read_table(spec.queries, data, spec):
            task.queries.setdefault(str(r["id"]), r["text"])  # rows may repeat a query
        for r in read_table(spec.qrels, data, spec):
            score = int(float(r.get("score") or 1))
            task.qrels.setdefault(str(r["query"]), {})[str(r["doc"])] = score
    where = spec.source_file
    task.queries = {q: t for q, t in task.queries.items() if q in task.qrels}
    if not task.queries:
        raise SpecError(where, "queries", "no query has a relevance judgement (qrels)")
    if not task.corpus:
        raise SpecError(where, "corpus", "the corpus is empty")
    missing = {d for q in task.queries for d in task.qrels[q]} - set(task.corpus)
    if missing:
        raise SpecError(
            where,
            "qrels",
            f"{len(missing)} judged documents are not in the corpus, e.g. {sorted(missing)[:3]}",
        )
    n = spec.sample.n if spec.sample else None
    for count, seed in ((n, spec.sample.seed if spec.sample else 0), (limit, 0)):
        if count:
            keep = _subset(sorted(task.queries), count, seed)
            task.queries = {q: task.queries[q] for q in keep}
    task.qrels = {q: task.qrels[q] for q in task.queries}
    distractors = spec.corpus_sample.distractors if spec.corpus_sample else None
    if limit:
        distractors = min(distractors or limit, limit)
    if distractors is not None:
        seed = spec.corpus_sample.seed if spec.corpus_sample else 0
        relevant = {d for q in task.qrels.values() for d in q}
        others = sorted(set(task.corpus) - relevant)
        keep = relevant | set(_subset(others, distractors, seed))
        task.corpus = {d: v for d, v in task.corpus.items() if d in keep}
    if spec.max_chars:
        for doc in task.corpus.values():
            doc["text"] = doc["text"][: spec.max_chars]
    return task


def _read_squad(task: TaskData, path: Path) -> None:
    """SQuAD v1.1 JSON: each question's relevant document is its paragraph."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    for a, article in enumerate(raw.get("data", [])):
        for p, para in enumerate(article.get("paragraphs", [])):
            doc = f"{a}-{p}"
            task.corpus[doc] = {"title": article.get("title", ""), "text": para["context"]}
            for qa in para.get("qas", []):
                task.queries[qa["id"]] = qa["question"]
                task.qrels[qa["id"]] = {doc: 1}


def _read_beir(task: TaskData, folder: Path) -> None:
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""
    for line in _lines(folder / "corpus.jsonl"):
        if line.strip():
            r = json.loads(line)
            task.corpus[str(r["_id"])] = {"title": r.get("title", ""), "text": r.get("text", "")}
    for line in _lines(folder / "queries.jsonl"):
        if line.strip():
            r = json.loads(line)
            task.queries[str(r["_id"])] = r["text"]
    with open(folder / f"qrels/{task.spec.eval_split}.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    for r in rows[1:] if rows and not rows[0][-1].strip().isdigit() else rows:
        task.qrels.setdefault(r[0], {})[r[1]] = int(float(r[2]))
