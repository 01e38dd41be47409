"""Collators: mixed NTP (some sequences get the GEM specials) and contrastive views."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from .. import masking
from ..embedding_format import Tokenize, ids_tokenizer
from ..masking import Layout

IGNORE = -100


def _pad_batch(
    seqs: list[list[int]], layouts: list[Layout], pad_id: int, mask_dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Right-pad ids; build segments, position ids and the attention mask (2-D when possible)."""
    segments = masking.batch_segments(layouts)  # (B, T)
    B, T = segments.shape
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    for i, ids in enumerate(seqs):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    attention_mask = masking.batch_attention_mask(segments, mask_dtype)  # (B, T) or (B, 1, T, T)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": masking.position_ids(segments),
        "segments": segments,
    }


@dataclass
class GEMCollator:
    """Mixed NTP: each sequence gets the k specials with probability ``gem_prob``.

    ``format="split"`` inserts them at a random point (``prefix <S> suffix``),
    ``"reconstruction"`` builds ``text <S> text`` from the first half of the chunk, ``"mixed"``
    picks either at random. Labels are -100 on the specials and on padding; the suffix can read
    the prefix only through the specials (the GEM mask). Sequences keep their input length
    (reconstruction drops one token when ``len - k`` is odd).

    >>> c = GEMCollator(special_ids=[99], pad_id=0, gem_prob=1.0, format="split", min_prefix=2,
    ...                 min_suffix=2, seed=0)
    >>> b = c([{"input_ids": [1, 2, 3, 4, 5, 6]}])
    >>> b["input_ids"].tolist()
    [[1, 2, 3, 99, 4, 5]]
    >>> b["labels"].tolist()
    [[1, 2, 3, -100, 4, 5]]
    >>> b["segments"].tolist(), b["attention_mask"].shape
    ([[1, 1, 1, 2, 3, 3]], torch.Size([1, 1, 6, 6]))
    """

    special_ids: list[int]
    pad_id: int
    gem_prob: float = 0.2
    format: str = "reconstruction"
    min_prefix: int = 8
    min_suffix: int = 8
    mask_dtype: torch.dtype = torch.float32
    seed: int | None = None
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.format not in ("split", "reconstruction", "mixed"):
            raise ValueError(f"format must be split, reconstruction or mixed, got {self.format!r}")
        if not 0 <= self.gem_prob <= 1:
            raise ValueError(f"gem_prob must be in [0, 1], got {self.gem_prob}")
        self.rng = random.Random(self.seed)

    def min_length(self) -> int:
        """Shortest sequence that can hold prefix + specials + suffix."""
        k = len(self.special_ids)
        split = self.min_prefix + k + self.min_suffix
        recon = 2 * self.min_prefix + k
        return {"split": split, "reconstruction": recon, "mixed": max(split, recon)}[self.format]

    def gem_sequence(self, ids: list[int]) -> tuple[list[int], Layout]:
        """One sequence with the specials inserted, cut back to ``len(ids)`` tokens."""
        k, n = len(self.special_ids), len(ids)
        fmt = (
            self.format if self.format != "mixed" else self.rng.choice(["split", "reconstruction"])
        )
        if fmt == "reconstruction":
            half = (n - k) // 2
            return ids[:half] + self.special_ids + ids[:half], Layout(half, k, half)
        cut = self.rng.randint(self.min_prefix, n - k - self.min_suffix)
        suffix = ids[cut : n - k]
        return ids[:cut] + self.special_ids + suffix, Layout(cut, k, len(suffix))

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        seqs, layouts = [], []
        for f in features:
            ids = list(f["input_ids"])
            if self.rng.random() < self.gem_prob and len(ids) >= self.min_length():
                ids, layout = self.gem_sequence(ids)
            else:
                layout = Layout(len(ids))
            seqs.append(ids)
            layouts.append(layout)
        batch = _pad_batch(seqs, layouts, self.pad_id, self.mask_dtype)
        labels = batch["input_ids"].clone()
        labels[(batch["segments"] == masking.SPECIAL) | (batch["segments"] == masking.PAD)] = IGNORE
        batch["labels"] = labels
        return batch


@dataclass
class ContrastiveCollator:
    """Pairs for InfoNCE: the anchor is ``text <S>``, the positive is the same text with random
    token dropout (rate ``dropout``) before ``<S>``; other rows of the batch are the negatives.
    ``tokenize`` finishes each view into model input: the model's embedding format's build
    (``EmbeddingFormat.tokenize_fn(tokenizer, room=UNCUT)``, the way sentence-transformers'
    collator takes ``model.tokenize``), so a view is what ``encode`` embeds; without it, the
    tail is ``suffix_ids`` + ``special_ids``.
    A feature with ``positive_ids`` (a pair from :mod:`gemlm.training.pairs`) brings its own
    positive, which gets the same dropout, and may bring ``protect`` for its anchor; one with
    ``negative_ids`` (:mod:`gemlm.training.negatives`: every feature then has one) adds a third
    view, its mined hard negative (no dropout); ``teacher_query`` / ``teacher_positive`` (/
    ``teacher_negative``) vectors become ``teacher`` (2B or 3B, D_t).

    Rows 0..B-1 are anchors, B..2B-1 their positives, then 2B..3B-1 their negatives if any
    (the batch then says ``pairs`` = B). Anchor labels allow an NTP term on the
    clean text (positives are never NTP targets). The first ``protect`` tokens (BOS, an
    instruction prompt) are never dropped and never NTP targets; ``suffix_ids`` (a fixed readout
    suffix, see ``GEMConfig.readout_suffix``) go between the text and the specials.

    >>> c = ContrastiveCollator(special_ids=[99], pad_id=0, dropout=0.5, seed=1)
    >>> b = c([{"input_ids": [1, 2, 3, 4]}, {"input_ids": [5, 6]}])
    >>> b["input_ids"].tolist()
    [[1, 2, 3, 4, 99], [5, 6, 99, 0, 0], [2, 3, 99, 0, 0], [5, 99, 0, 0, 0]]
    >>> b["labels"][0].tolist(), b["labels"][2].tolist()
    ([1, 2, 3, 4, -100], [-100, -100, -100, -100, -100])
    """

    special_ids: list[int]
    pad_id: int
    dropout: float = 0.1
    protect: int = 0
    suffix_ids: list[int] = field(default_factory=list)
    mask_dtype: torch.dtype = torch.float32
    seed: int | None = None
    tokenize: Tokenize | None = None
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        self.rng = random.Random(self.seed)
        if self.tokenize is None:
            self.tokenize = ids_tokenizer(self.suffix_ids, self.special_ids)

    def drop(self, ids: list[int]) -> list[int]:
        head, body = ids[: self.protect], ids[self.protect :]
        kept = [t for t in body if self.rng.random() >= self.dropout]
        return head + (kept or body[:1])

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        texts = [list(f["input_ids"]) for f in features]
        positives = [list(f.get("positive_ids", t)) for f, t in zip(features, texts, strict=True)]
        negatives = [list(f["negative_ids"]) for f in features if "negative_ids" in f]
        if negatives and len(negatives) != len(features):
            raise ValueError("either every pair of a batch has a negative_ids or none has")
        views = texts + [self.drop(p) for p in positives] + negatives
        built = self.tokenize(views)
        k, suffix = built.specials, built.tail - built.specials
        layouts = [Layout(len(s) - k, k) for s in built.ids]
        batch = _pad_batch(built.ids, layouts, self.pad_id, self.mask_dtype)
        labels = batch["input_ids"].clone()
        labels[batch["segments"] != masking.PREFIX] = IGNORE
        labels[len(texts) :] = IGNORE
        for row, f in enumerate(features):
            labels[row, : f.get("protect", self.protect)] = IGNORE
        if suffix:  # the fixed readout suffix is no NTP target
            tail = (batch["segments"] == masking.SPECIAL).float().argmax(1)  # first special per row
            for row, end in enumerate(tail.tolist()):
                labels[row, end - suffix : end] = IGNORE
        batch["labels"] = labels
        if negatives:  # 3B rows: the module reads B from here
            batch["pairs"] = torch.tensor(len(features))
        if "teacher_query" in features[0]:  # a teacher encoder's vectors of the clean texts
            keys = ["teacher_query", "teacher_positive"] + ["teacher_negative"] * bool(negatives)
            batch["teacher"] = torch.tensor([f[key] for key in keys for f in features])
        return batch
