"""SQuAD v1.1 answer scoring: the official normalisation, exact match and token F1.

>>> normalize_answer("The  Eiffel-Tower!")
'eiffeltower'
>>> round(f1_score("the big cat", ["a big dog"]), 3)
0.5
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCT = set(string.punctuation)
_CITATION = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, golds: list[str]) -> float:
    return float(max(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def f1_score(prediction: str, golds: list[str]) -> float:
    return max(_f1(prediction, g) for g in golds)


def clean_prediction(text: str) -> str:
    """The first non-empty line of a generated answer, without [n] citation markers."""
    lines = [line for line in _CITATION.sub("", text).splitlines() if line.strip()]
    return lines[0].strip() if lines else ""


def contains_answer(prediction: str, golds: list[str]) -> float:
    """1.0 when a normalised gold answer occurs in the normalised prediction (whole words).

    The "has answer" accuracy of open-domain QA: it does not punish a small model for wrapping
    the answer in a sentence, which SQuAD's EM and F1 do.

    >>> contains_answer("It was signed in 1997 by the UK.", ["1997"])
    1.0
    >>> contains_answer("In 19970.", ["1997"])
    0.0
    """
    pred = f" {normalize_answer(prediction)} "
    return float(any(f" {normalize_answer(g)} " in pred for g in golds if normalize_answer(g)))
