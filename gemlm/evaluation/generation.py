"""Generation retention: Wikipedia perplexity, MMLU (5-shot letters and 0-shot cloze), ARC cloze.

Prompts, as the reference harnesses write them:

* **MMLU 5-shot, letters** (lm-evaluation-harness ``mmlu``; the GEM paper's "acc_char": with
  one-letter answers it equals plain accuracy): ``The following are multiple choice questions
  (with answers) about <subject>.\\n\\n`` + 5 dev examples (``question\\nA. ..\\nB. ..\\nC. ..\\nD.
  ..\\nAnswer: X``, joined by blank lines) + the question; the answer is the most likely of
  `` A``/`` B``/`` C``/`` D``. Macro average over subjects.
* **MMLU cloze** (SmolLM2's lighteval ``mmlu_cloze``, 0-shot): ``The following are questions about
  <subject>.\\nQuestion: <q>\\nAnswer:`` scored against each full answer text; ``acc`` (sum
  log-prob) and ``acc_norm`` (log-prob per character of the answer, lighteval's
  ``loglikelihood_acc_norm``), macro average over subjects.
* **ARC-Easy / ARC-Challenge cloze** (lighteval ``arc``, 0-shot): ``Question: <stem>\\nAnswer:`` +
  `` <choice text>``; ``acc`` and ``acc_norm``.
* **Perplexity**: exp(mean token NLL) over held-out Wikipedia paragraphs, each cut to
  ``max_tokens`` tokens; the held-out slice is the training recipe's own
  (``train_eval_split(load_texts(wiki), eval_rows, seed)``), so it is never trained on.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..corpus import load_texts, train_eval_split
from .loglik import LoglikScorer

LETTERS = "ABCD"


@dataclass
class MCItem:
    """One multiple-choice question: a context, the choice continuations, the gold index."""

    context: str
    choices: list[str]
    gold: int
    group: str = ""  # subject, for macro averages


def _subject_name(subject: str) -> str:
    return subject.replace("_", " ")


def read_mmlu(folder: Path, split: str = "test") -> dict[str, list[dict[str, Any]]]:
    """{subject: rows} from ``<folder>/<split>/<subject>_<split>.csv``
    (header question, choice0..choice3, answer index)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((folder / split).glob(f"*_{split}.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        out[path.name[: -len(f"_{split}.csv")]] = [
            {
                "question": r["question"],
                "choices": [r[f"choice{i}"] for i in range(4)],
                "answer": int(r["answer"]),
            }
            for r in rows
        ]
    if not out:
        raise FileNotFoundError(f"no MMLU files in {folder / split}")
    return out


def sample_mmlu(
    test: dict[str, list[dict[str, Any]]], per_subject: int | None, seed: int, limit: int | None
) -> dict[str, list[dict[str, Any]]]:
    """A fixed stratified sample: ``per_subject`` seeded questions of every subject (file order
    kept); ``limit`` then caps the total, taking subjects round-robin."""
    out = {}
    for subject, rows in test.items():
        keep = range(len(rows))
        if per_subject and per_subject < len(rows):
            keep = sorted(random.Random(f"{seed}-{subject}").sample(range(len(rows)), per_subject))
        out[subject] = [rows[i] for i in keep]
    if limit:
        picked: dict[str, list[dict[str, Any]]] = defaultdict(list)
        depth, total = 0, 0
        while total < limit and any(depth < len(r) for r in out.values()):
            for subject, rows in out.items():
                if depth < len(rows) and total < limit:
                    picked[subject].append(rows[depth])
                    total += 1
            depth += 1
        out = dict(picked)
    return out


def mmlu_letter_items(
    test: dict[str, list[dict[str, Any]]], dev: dict[str, list[dict[str, Any]]], shots: int = 5
) -> list[MCItem]:
    def block(row: dict[str, Any]) -> str:
        opts = "".join(f"\n{L}. {c}" for L, c in zip(LETTERS, row["choices"], strict=True))
        return f"{row['question'].strip()}{opts}\nAnswer:"

    items = []
    for subject, rows in test.items():
        topic = _subject_name(subject)
        head = f"The following are multiple choice questions (with answers) about {topic}.\n\n"
        shots_text = "".join(
            f"{block(r)} {LETTERS[r['answer']]}\n\n" for r in dev.get(subject, [])[:shots]
        )
        for row in rows:
            items.append(
                MCItem(
                    head + shots_text + block(row),
                    [f" {L}" for L in LETTERS],
                    row["answer"],
                    subject,
                )
            )
    return items


def mmlu_cloze_items(test: dict[str, list[dict[str, Any]]]) -> list[MCItem]:
    items = []
    for subject, rows in test.items():
        head = f"The following are questions about {_subject_name(subject)}.\nQuestion: "
        for row in rows:
            items.append(
                MCItem(
                    head + row["question"] + "\nAnswer:",
                    [f" {c}" for c in row["choices"]],
                    row["answer"],
                    subject,
                )
            )
    return items


def arc_items(path: Path, n: int | None, seed: int, limit: int | None) -> list[MCItem]:
    """ARC JSONL (AI2 format; labels A-E or 1-5) as cloze items, a fixed seeded sample of ``n``."""
    rows = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    for count, s in ((n, seed), (limit, 0)):
        if count and count < len(rows):
            rows = [rows[i] for i in sorted(random.Random(s).sample(range(len(rows)), count))]
    items = []
    for r in rows:
        choices = r["question"]["choices"]
        labels = [c["label"] for c in choices]
        items.append(
            MCItem(
                f"Question: {r['question']['stem']}\nAnswer:",
                [f" {c['text']}" for c in choices],
                labels.index(r["answerKey"].strip()),
            )
        )
    return items


def score_mc(scorer: LoglikScorer, items: list[MCItem], macro: bool = False) -> dict[str, Any]:
    """acc (argmax summed log-prob) and acc_norm (argmax log-prob per character), x100."""
    requests = [(it.context, c) for it in items for c in it.choices]
    lls = scorer.loglikelihood(requests)
    correct, correct_norm, k = [], [], 0
    for it in items:
        ll = lls[k : k + len(it.choices)]
        k += len(it.choices)
        norm = [v / max(len(c), 1) for v, c in zip(ll, it.choices, strict=True)]
        correct.append(max(range(len(ll)), key=ll.__getitem__) == it.gold)
        correct_norm.append(max(range(len(norm)), key=norm.__getitem__) == it.gold)
    out: dict[str, Any] = {
        "n": len(items),
        "acc": 100 * sum(correct) / max(len(items), 1),
        "acc_norm": 100 * sum(correct_norm) / max(len(items), 1),
    }
    if macro:
        for key, flags in (("acc", correct), ("acc_norm", correct_norm)):
            per: dict[str, list[bool]] = defaultdict(list)
            for it, f in zip(items, flags, strict=True):
                per[it.group].append(f)
            out[f"{key}_macro"] = (
                100 * sum(sum(v) / len(v) for v in per.values()) / max(len(per), 1)
            )
        out["subjects"] = len({it.group for it in items})
    return out


def heldout_wikipedia(data: Path, source: str, eval_rows: int, seed: int) -> list[str]:
    """The training recipe's held-out slice of the Wikipedia text (never trained on)."""
    _, heldout = train_eval_split(load_texts(data / source), eval_rows=eval_rows, seed=seed)
    return list(heldout["text"])
