"""Embedding precisions as in sentence-transformers: float32, int8, uint8, binary, ubinary."""

from __future__ import annotations

import numpy as np

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def quantize_embeddings(emb: np.ndarray, precision: str) -> np.ndarray:
    """(N, D) float32 -> the requested precision.

    int8/uint8 use per-dimension min/max ranges computed from ``emb`` itself (as
    sentence-transformers does without calibration embeddings), 256 buckets each.
    binary/ubinary keep the sign bit (> 0) and pack 8 dims per byte; binary is offset by -128.

    >>> quantize_embeddings(np.array([[1.0, -1.0, 0.5, -0.5, 1, 1, 1, 1]]), "ubinary").tolist()
    [[175]]
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    emb = np.asarray(emb, dtype=np.float32)
    if precision == "float32":
        return emb
    if precision in ("binary", "ubinary"):
        packed = np.packbits(emb > 0, axis=-1)
        return (packed.astype(np.int16) - 128).astype(np.int8) if precision == "binary" else packed
    lo, hi = emb.min(0), emb.max(0)
    steps = np.where(hi > lo, (hi - lo) / 255, 1.0)
    buckets = np.clip(np.round((emb - lo) / steps), 0, 255)
    return (buckets - 128).astype(np.int8) if precision == "int8" else buckets.astype(np.uint8)
