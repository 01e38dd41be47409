"""Mined hard negatives: one near-miss passage per pair, chosen by an encoder, false-negative
filtered.

In-batch negatives from random articles are mostly easy. ``hard_negatives`` gives each
(query, positive) pair a third text: the pool positive (of another document) that a *miner*
ranks closest to the query, skipping candidates that score above ``hard_negative_margin`` x
the query's own positive score. That filter is NV-Retriever's "TopK-PercPos" (Moreira et al.
2024, arXiv 2407.15831): near-duplicates of the positive are likely unlabelled positives, and
training them apart hurts. The contrastive loss then ranks each query's positive against every
positive *and* every mined negative of the batch (:func:`gemlm.training.losses.info_nce`).

The miner is a gemlm model (an alias or a folder; the shipped ``smollm2-135m-gem`` mining for a
run of its own recipe is one round of self-mining) or ``"teacher"``, the ``distill_teacher``
(a teacher's signal: the run is labelled distilled, never GEM's self-supervised result). It
embeds every query and positive of the pool once; the choice is saved in the run folder keyed
by the miner and the pool, so a resumed run does not mine again. The miner sees what training
sees: each query and positive cut to the run's token budget (``contrastive_max_len``,
``positive_max_len``) by the student's tokenizer, not the whole paragraph a title or crop pair may
come from (that would rank texts training never compares, at several times the cost).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np

from ..atomic import write_json_atomic
from ..model import GEMModel
from . import distill

if TYPE_CHECKING:
    from .config import GEMTrainingConfig

logger = logging.getLogger(__name__)

Encode = Callable[[list[str], str], np.ndarray]  # (texts, "query" | "document") -> (N, D) unit
FILE = "hard_negatives.json"
NONE = -1  # no candidate passed the filter


def pick_negatives(
    queries: np.ndarray,
    positives: np.ndarray,
    docs: np.ndarray,
    margin: float = 0.95,
    depth: int = 32,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """For each query i, the pool row j whose positive scores highest with it among rows of
    another document whose score is below ``margin`` x s(q_i, p_i), looked for in its ``depth``
    best-scoring rows; :data:`NONE` when none qualifies. Also returns how many candidates each
    row skipped as likely false negatives (above the margin).

    queries, positives (N, D) unit vectors (row i's positive is positives[i]); docs (N,) ids.

    >>> q = np.eye(3, dtype=np.float32); p = np.array([[1, 0, 0], [.9, .1, 0], [0, 0, 1]], "f")
    >>> p /= np.linalg.norm(p, axis=1, keepdims=True)
    >>> chosen, skipped = pick_negatives(q, p, np.arange(3), margin=0.95, depth=3)
    >>> chosen.tolist(), skipped.tolist()  # query 0 vs row 1's positive: 0.99, a likely positive
    ([2, 0, 0], [1, 0, 0])
    """
    n = len(queries)
    chosen = np.full(n, NONE, dtype=np.int64)
    skipped = np.zeros(n, dtype=np.int64)
    own = np.einsum("nd,nd->n", queries, positives)  # (N,) s(q_i, p_i)
    depth = min(depth, n)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        scores = queries[rows] @ positives.T  # (c, N)
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]  # (c, depth), unordered
        top_scores = np.take_along_axis(scores, top, 1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top, top_scores = (
            np.take_along_axis(top, order, 1),
            np.take_along_axis(top_scores, order, 1),
        )
        for r, cand, s in zip(rows, top, top_scores, strict=True):
            other = docs[cand] != docs[r]  # same document: a positive by construction
            near = other & (s >= margin * own[r])
            ok = other & ~near
            skipped[r] = int(near.sum())
            if ok.any():
                chosen[r] = cand[int(np.argmax(ok))]
    return chosen, skipped


def fill_random(chosen: np.ndarray, docs: np.ndarray, seed: int = 0) -> np.ndarray:
    """:data:`NONE` rows get a random row of another document (an ordinary negative), so every
    pair has a third text and the batch stays rectangular."""
    rng = random.Random(seed)
    out = chosen.copy()
    n = len(out)
    for i in np.flatnonzero(out == NONE):
        for _ in range(100):
            j = rng.randrange(n)
            if docs[j] != docs[i]:
                out[i] = j
                break
        else:
            raise ValueError("cannot find a negative from another document: the pool has one")
    return out


def pool_key(miner: str, pairs: datasets.Dataset, margin: float, depth: int, view: str = "") -> str:
    """What the saved choice depends on: the miner, the filter, the texts' cut (``view``) and
    every pair's texts."""
    h = hashlib.sha256(f"{miner}\0{margin}\0{depth}\0{view}".encode())
    for q, p, d in zip(pairs["query"], pairs["positive"], pairs["doc"], strict=True):
        h.update(f"\0{q}\0{p}\0{d}".encode())
    return h.hexdigest()


def add_negatives(
    pairs: datasets.Dataset,
    encode: Encode,
    miner: str,
    folder: Path,
    margin: float = 0.95,
    depth: int = 32,
    seed: int = 0,
    view: TrainingView | None = None,
) -> datasets.Dataset:
    """``pairs`` (query, positive, source, doc) with a ``negative`` column: the text of the
    mined row's positive (whole: the collator cuts it as a positive). ``encode`` embeds the
    texts as ``view`` cuts them (only when ``folder`` holds no choice for this pool); the choice
    and its counts are written to ``folder / FILE``."""
    key = pool_key(miner, pairs, margin, depth, view.name if view else "")
    path = folder / FILE
    saved = json.loads(path.read_text()) if path.exists() else {}
    if saved.get("key") == key:
        negatives = np.asarray(saved["negatives"], dtype=np.int64)
        logger.info("Hard negatives: reusing %s (%s)", path, saved["stats"])
    else:
        docs = np.asarray(pairs["doc"])
        queries, positives = list(pairs["query"]), list(pairs["positive"])
        if view is not None:
            queries, positives = view.cut(queries, view.query), view.cut(positives, view.positive)
        logger.info("Hard negatives: %s embeds %d queries and positives", miner, len(queries))
        q = encode(queries, "query")
        p = encode(positives, "document")
        chosen, skipped = pick_negatives(q, p, docs, margin, depth)
        negatives = fill_random(chosen, docs, seed)
        stats = {
            "miner": miner,
            "pairs": len(pairs),
            "mined": int((chosen != NONE).sum()),
            "random_fallback": int((chosen == NONE).sum()),
            "false_negatives_skipped": int(skipped.sum()),
            "margin": margin,
            "depth": depth,
        }
        logger.info("Hard negatives: %s", stats)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"key": key, "stats": stats, "negatives": negatives.tolist()})
    positives = pairs["positive"]
    return pairs.add_column("negative", [positives[j] for j in negatives.tolist()])


def gem_encoder(spec: str, **options: Any) -> Encode:
    """A gemlm model (alias or folder) as a miner: its own prompts by role."""
    gem = GEMModel.from_pretrained(spec, **options)

    def encode(texts: list[str], role: str) -> np.ndarray:
        embed = gem.encode_query if role == "query" else gem.encode_document
        return np.asarray(embed(texts, batch_size=64, normalize_embeddings=True), dtype=np.float32)

    return encode


def teacher_encoder(teacher: Any) -> Encode:
    """A teacher as a miner: its ``encode_query`` / ``encode_document`` when it has them
    (sentence-transformers' prompts, E5's prefixes), else ``encode`` on the plain texts."""

    def encode(texts: list[str], role: str) -> np.ndarray:
        by_role = getattr(teacher, f"encode_{role}", None)  # e.g. E5's query/passage prefixes
        vecs = (by_role or teacher.encode)(texts, batch_size=256, normalize_embeddings=True)
        return np.asarray(vecs, dtype=np.float32)

    return encode


def miner(cfg: GEMTrainingConfig) -> Encode:
    """The encoder ``cfg.hard_negatives`` names, loaded on its first call (a resumed run that
    reuses its saved negatives never loads it)."""
    loaded: list[Encode] = []

    def encode(texts: list[str], role: str) -> np.ndarray:
        if not loaded:
            if cfg.hard_negatives == "teacher":
                loaded.append(teacher_encoder(distill.load_teacher(cfg.distill_teacher or "")))
            else:
                loaded.append(gem_encoder(cfg.hard_negatives or ""))
        return loaded[0](texts, role)

    return encode


@dataclass(frozen=True)
class TrainingView:
    """Texts as training sees them: their first ``query`` / ``positive`` tokens of
    ``tokenizer`` (the collator keeps a text's head: :func:`.pairs.tokenize_pairs`)."""

    tokenizer: Any
    query: int
    positive: int

    @property
    def name(self) -> str:
        return f"{type(self.tokenizer).__name__}:{len(self.tokenizer)}:{self.query}:{self.positive}"

    def cut(self, texts: list[str], room: int) -> list[str]:
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return self.tokenizer.batch_decode([x[:room] for x in ids])


def from_config(
    cfg: GEMTrainingConfig, pairs: datasets.Dataset, tokenizer: Any
) -> datasets.Dataset:
    """:func:`add_negatives` with the run's miner, filter, seed and folder, on the texts cut to
    the run's token budget by its ``tokenizer``."""
    view = TrainingView(
        tokenizer, cfg.contrastive_max_len, cfg.positive_max_len or cfg.contrastive_max_len
    )
    return add_negatives(
        pairs,
        miner(cfg),
        cfg.hard_negatives or "",
        Path(cfg.output_dir),
        cfg.hard_negative_margin,
        cfg.hard_negative_depth,
        cfg.seed,
        view,
    )
