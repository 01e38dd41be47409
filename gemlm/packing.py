"""Sequence packing for embedding: many short texts share one row, each sees only itself.

A padded batch of texts of different lengths computes every padding position. Packing instead
lays the texts end to end in rows of ``capacity`` tokens (first-fit decreasing), restarts the
position ids at each text and gives the row a block-diagonal mask: a token attends only to
tokens of its own text, under that text's GEM rules (``masking.visibility``). Each text's states
are then those of running it alone (up to float rounding), with almost no padding.

Used by the server, whose micro-batches hold texts in arrival order: sorting within a
micro-batch still leaves ~40% padding there (``benchmarks/serve_padding.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import masking


def first_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into rows of total <= ``capacity``, longest first.

    A length above ``capacity`` gets a row of its own.

    >>> first_fit([5, 3, 4, 2], 8)  # 5+3 and 4+2
    [[0, 1], [2, 3]]
    >>> first_fit([9, 1], 8)
    [[0], [1]]
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


@dataclass(frozen=True)
class Packed:
    """Rows of packed texts. R rows of C tokens; N texts with k specials each at their end."""

    input_ids: torch.Tensor  # (R, C) long, pad_id on padding
    segments: torch.Tensor  # (R, C) masking segment ids (PREFIX, SPECIAL, PAD)
    docs: torch.Tensor  # (R, C) index of the text at each position, -1 on padding
    positions: torch.Tensor  # (R, C) position ids, restarting at 0 for every text
    special_at: torch.Tensor  # (N, k) flat index (row * C + column) of each text's specials

    def attention_mask(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Additive (R, 1, C, C): the GEM mask inside each text, nothing across texts."""
        same_doc = self.docs[:, :, None] == self.docs[:, None, :]  # (R, C, C)
        return masking.additive_mask(masking.visibility(self.segments) & same_doc, dtype)

    def special_states(self, hidden: torch.Tensor) -> torch.Tensor:
        """(R, C, D) last-layer states -> (N, k, D) at each text's specials, in input order."""
        return hidden.reshape(-1, hidden.shape[-1])[self.special_at]


def pack(batch: list[list[int]], k: int, capacity: int, pad_id: int = 0) -> Packed:
    """Id lists that each end with k specials -> :class:`Packed` rows of width >= ``capacity``.

    >>> p = pack([[7, 8, 99], [5, 99], [6, 99]], k=1, capacity=5)
    >>> p.input_ids.tolist(), p.positions.tolist(), p.special_at.tolist()
    ([[7, 8, 99, 5, 99], [6, 99, 0, 0, 0]], [[0, 1, 2, 0, 1], [0, 1, 0, 0, 0]], [[2], [4], [6]])
    """
    if not batch:
        raise ValueError("empty batch")
    lengths = [len(ids) for ids in batch]
    if min(lengths) < k:
        raise ValueError(f"every sequence needs its {k} special token(s) at the end")
    width = max(capacity, *lengths)
    rows = first_fit(lengths, width)
    R = len(rows)
    input_ids = torch.full((R, width), pad_id, dtype=torch.long)
    segments = torch.full((R, width), masking.PAD, dtype=torch.long)
    docs = torch.full((R, width), -1, dtype=torch.long)
    positions = torch.zeros((R, width), dtype=torch.long)
    special_at = torch.empty((len(batch), k), dtype=torch.long)
    for r, members in enumerate(rows):
        start = 0
        for i in sorted(members):  # input order within a row
            n = lengths[i]
            end = start + n
            input_ids[r, start:end] = torch.tensor(batch[i])
            segments[r, start : end - k] = masking.PREFIX
            segments[r, end - k : end] = masking.SPECIAL
            docs[r, start:end] = i
            positions[r, start:end] = torch.arange(n)
            special_at[i] = r * width + torch.arange(end - k, end)
            start = end
    return Packed(input_ids, segments, docs, positions, special_at)
