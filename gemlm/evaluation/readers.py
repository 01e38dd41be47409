"""Read the local files a :class:`TaskSpec` names into plain Python rows, checking the content.

Rows with an empty text, sentence, label or score are skipped and counted per split and reason
(:attr:`TaskData.skipped`, listed by :meth:`TaskData.summary` in the report). Every problem raises
:class:`SpecError` naming the spec and the field: a column the file does not have, an empty
split, a label column with a single class (or a non-binary pair label), a label missing from
``label_map``, a score outside the declared range. :func:`read_task` runs for every task before
any model is loaded.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .specs import SpecError, TaskSpec
from .tables import ENCODING, check_files, read_table

EMPTY_ORDER = ("score", "label", "text", "sentence1", "sentence2")  # the reason a row is skipped
WHERE = "where"  # the skip reason of rows dropped by a ``where`` filter


@dataclass
class TaskData:
    """What an mteb task needs: rows per split (table tasks) or corpus/queries/qrels."""

    spec: TaskSpec
    splits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    corpus: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {title, text}
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    read: dict[str, int] = field(default_factory=dict)  # rows per split before any subset
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> reason -> rows

    def sizes(self) -> dict[str, int]:
        """Row counts."""
        if self.spec.type == "retrieval":
            return {"queries": len(self.queries), "corpus": len(self.corpus)}
        return {split: len(rows) for split, rows in self.splits.items()}

    def summary(self) -> str:
        """The texts to embed per split, of how many read, and the rows skipped, e.g.
        ``test 1,379 pairs = 2,758 texts, 12 rows skipped (empty score)``."""
        sizes = self.sizes()
        if self.spec.type == "retrieval":
            parts = [
                f"{k} {self._count(k, n)}{_skips(self.skipped.get(k))}" for k, n in sizes.items()
            ]
            return " + ".join(parts) + f" = {_plural(sum(sizes.values()), 'text')}"
        pairs = self.spec.type in ("sts", "pair_classification")
        out = []
        for split, n in sizes.items():
            count = self._count(split, n, "pair" if pairs else "text")
            texts = f"{count} = {_plural(2 * n, 'text')}" if pairs else count
            out.append(f"{split} {texts}{_skips(self.skipped.get(split))}")
        return "; ".join(out)

    def _count(self, split: str, n: int, unit: str = "") -> str:
        """``1,000 of 3,080 texts`` when a subset was drawn, else ``3,080 texts``."""
        read = self.read.get(split, n)
        of = f"{n:,} of {read:,}" if read != n else f"{n:,}"
        return f"{of} {unit}{'' if read == 1 else 's'}" if unit else of


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _skips(reasons: dict[str, int] | None) -> str:
    """``, 3 rows filtered out (where), 12 rows skipped (empty score)`` or ``""``."""
    reasons = dict(reasons or {})
    out = ""
    if reasons.get(WHERE):
        out += f", {_plural(reasons.pop(WHERE), 'row')} filtered out (where)"
    reasons = {k: v for k, v in reasons.items() if v}
    if reasons:
        why = ", ".join(f"{v:,} {k}" for k, v in reasons.items())
        why = next(iter(reasons)) if len(reasons) == 1 else why
        out += f", {_plural(sum(reasons.values()), 'row')} skipped ({why})"
    return out


def read_task(spec: TaskSpec, data: Path, limit: int | None = None) -> TaskData:
    """Read and check every file of ``spec``; apply the spec's subsets, then ``limit``."""
    check_files(spec, data)
    if spec.type == "retrieval":
        return _read_retrieval(spec, data, limit)
    task = TaskData(spec)
    for split, table in spec.splits.items():
        rows, dropped = read_table(table, data, spec)
        rows, positions, skipped = _skip_empty(rows)
        task.skipped[split] = {WHERE: dropped, **skipped} if dropped else skipped
        if not rows:
            files = ", ".join(str(data / f) for f in table.files)
            raise SpecError(
                spec.source_file,
                f"splits.{split}",
                f"{files} has no rows{_skips(task.skipped[split])}",
            )
        task.splits[split] = _check_rows(spec, split, rows, positions)
        task.read[split] = len(rows)
    if spec.train_sample and spec.train_sample.n:
        train = _subset(task.splits["train"], spec.train_sample.n, spec.train_sample.seed)
        if len({r["label"] for r in train}) < 2:
            raise SpecError(spec.source_file, "train_sample", "the sample has a single class")
        task.splits["train"] = train
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


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _skip_empty(
    rows: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[int], dict[str, int]]:
    """The rows without an empty role value, their positions, and {"empty <role>": count}."""
    kept, positions, reasons = [], [], Counter()
    for i, row in enumerate(rows):
        role = next((k for k in EMPTY_ORDER if k in row and _empty(row[k])), None)
        if role:
            reasons[f"empty {role}"] += 1
        else:
            kept.append(row)
            positions.append(i)
    return kept, positions, dict(reasons)


def _check_rows(
    spec: TaskSpec, split: str, rows: list[dict[str, Any]], positions: list[int]
) -> list[dict[str, Any]]:
    """Type every row's values in place (score float, labels str or 0/1); raise on bad ones."""
    where = spec.source_file
    for role in ("text", "sentence1", "sentence2"):
        for i, r in zip(positions, rows, strict=True):
            if role in r and not isinstance(r[role], str):
                raise SpecError(where, f"columns.{role}", f"split {split!r} row {i}: no text")
    if spec.type == "sts":
        _check_scores(spec, split, rows, positions)
    if spec.label_map is not None:
        _map_labels(spec, split, rows, positions)
    if spec.type in ("classification", "clustering"):
        classes = {str(r["label"]) for r in rows}
        if len(classes) < 2 and (spec.type == "clustering" or split == "train"):
            raise SpecError(where, "columns.label", f"split {split!r} has a single class {classes}")
        for r in rows:
            r["label"] = str(r["label"])
    if spec.type == "pair_classification":
        for i, r in zip(positions, rows, strict=True):
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


def _check_scores(
    spec: TaskSpec, split: str, rows: list[dict[str, Any]], positions: list[int]
) -> None:
    lo, hi = spec.score_range or (0.0, 5.0)
    for i, r in zip(positions, rows, strict=True):
        try:
            r["score"] = float(r["score"])
        except (TypeError, ValueError):
            raise SpecError(
                spec.source_file,
                "columns.score",
                f"split {split!r} row {i}: not a number: {r['score']!r}",
            ) from None
        if not lo <= r["score"] <= hi:
            raise SpecError(
                spec.source_file,
                "score_range",
                f"split {split!r} row {i}: score {r['score']} outside [{lo}, {hi}]",
            )


def _map_labels(
    spec: TaskSpec, split: str, rows: list[dict[str, Any]], positions: list[int]
) -> None:
    """Replace each raw label by its ``label_map`` value; an unmapped label is an error."""
    mapping = spec.label_map or {}
    for i, r in zip(positions, rows, strict=True):
        key = str(r["label"]).strip()
        if key not in mapping:
            raise SpecError(
                spec.source_file,
                "label_map",
                f"split {split!r} row {i}: label {key!r} is not mapped (keys: {sorted(mapping)})",
            )
        r["label"] = mapping[key]


def _read_retrieval(spec: TaskSpec, data: Path, limit: int | None) -> TaskData:
    task = TaskData(spec)
    if spec.source == "squad":
        _read_squad(task, data / spec.path)
    elif spec.source == "beir":
        _read_beir(task, data / spec.path)
    else:
        _read_tables(task, data)
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
    task.read = {"queries": len(task.queries), "corpus": len(task.corpus)}
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


def _read_tables(task: TaskData, data: Path) -> None:
    """Corpus, queries and qrels from three tables (rows dropped by ``where`` are counted)."""
    spec = task.spec
    assert spec.corpus and spec.queries and spec.qrels
    corpus, dropped = read_table(spec.corpus, data, spec)
    task.skipped["corpus"] = {WHERE: dropped}
    for r in corpus:
        task.corpus[str(r["id"])] = {"title": r.get("title") or "", "text": r["text"] or ""}
    queries, dropped = read_table(spec.queries, data, spec)
    task.skipped["queries"] = {WHERE: dropped}
    for r in queries:
        task.queries.setdefault(str(r["id"]), r["text"])  # rows may repeat a query
    for r in read_table(spec.qrels, data, spec)[0]:
        score = int(float(r.get("score") or 1))
        task.qrels.setdefault(str(r["query"]), {})[str(r["doc"])] = score


def _read_squad(task: TaskData, path: Path) -> None:
    """SQuAD v1.1 JSON: each question's relevant document is its paragraph."""
    raw = json.loads(path.read_text(encoding=ENCODING))
    for a, article in enumerate(raw.get("data", [])):
        for p, para in enumerate(article.get("paragraphs", [])):
            doc = f"{a}-{p}"
            task.corpus[doc] = {"title": article.get("title", ""), "text": para["context"]}
            for qa in para.get("qas", []):
                task.queries[qa["id"]] = qa["question"]
                task.qrels[qa["id"]] = {doc: 1}


def _read_beir(task: TaskData, folder: Path) -> None:
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""
    for line in (folder / "corpus.jsonl").read_text(encoding=ENCODING).splitlines():
        if line.strip():
            r = json.loads(line)
            task.corpus[str(r["_id"])] = {"title": r.get("title", ""), "text": r.get("text", "")}
    for line in (folder / "queries.jsonl").read_text(encoding=ENCODING).splitlines():
        if line.strip():
            r = json.loads(line)
            task.queries[str(r["_id"])] = r["text"]
    qrels = folder / f"qrels/{task.spec.eval_split}.tsv"
    with open(qrels, newline="", encoding=ENCODING) as f:
        rows = list(csv.reader(f, delimiter="\t"))
    for r in rows[1:] if rows and not rows[0][-1].strip().isdigit() else rows:
        task.qrels.setdefault(r[0], {})[r[1]] = int(float(r[2]))
