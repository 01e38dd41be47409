"""The GEM attention mask, as small pure functions over tensors.

A sequence is described by one *segment id* per position:

    PAD = 0      padding: sees nothing, is seen by nothing
    PREFIX = 1   text before the specials (or the whole text of a plain-NTP sequence)
    SPECIAL = 2  the k GEM tokens
    SUFFIX = 3   text after the specials (a continuation, or a copy in reconstruction)

Rules (query row i, key column j):
    causal               j <= i
    padding              neither i nor j is PAD
    suffix bottleneck    a SUFFIX row sees no PREFIX column (only specials + earlier suffix)
    specials isolated    a SPECIAL row sees the prefix and itself, not other specials

Both training formats are the same layout: random split is ``prefix <S> suffix``,
reconstruction is ``text <S> text`` (suffix = a copy of the prefix).

The mask is additive float (0 = visible, ``finfo(dtype).min`` = hidden), shape (B, 1, T, T),
which stock transformers models take unchanged for the sdpa and eager paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PAD, PREFIX, SPECIAL, SUFFIX = 0, 1, 2, 3


@dataclass(frozen=True)
class Layout:
    """Lengths of the three parts of one sequence (before padding)."""

    prefix: int
    specials: int = 0
    suffix: int = 0

    def __post_init__(self) -> None:
        if min(self.prefix, self.specials, self.suffix) < 0:
            raise ValueError(f"negative length in {self}")

    @property
    def length(self) -> int:
        return self.prefix + self.specials + self.suffix


def segments_for(layout: Layout, total_len: int, padding_side: str = "right") -> torch.Tensor:
    """Segment ids (T,) for one sequence padded to ``total_len``.

    >>> segments_for(Layout(2, 1, 2), 7).tolist()
    [1, 1, 2, 3, 3, 0, 0]
    >>> segments_for(Layout(2, 1, 2), 7, "left").tolist()
    [0, 0, 1, 1, 2, 3, 3]
    """
    if layout.length > total_len:
        raise ValueError(f"layout of length {layout.length} does not fit in {total_len}")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    body = torch.cat(
        [
            torch.full((layout.prefix,), PREFIX),
            torch.full((layout.specials,), SPECIAL),
            torch.full((layout.suffix,), SUFFIX),
        ]
    ).long()
    pad = torch.zeros(total_len - layout.length, dtype=torch.long)
    return torch.cat([pad, body] if padding_side == "left" else [body, pad])


def batch_segments(
    layouts: list[Layout], total_len: int | None = None, padding_side: str = "right"
) -> torch.Tensor:
    """Segment ids (B, T) for a batch; T defaults to the longest layout."""
    if not layouts:
        raise ValueError("empty batch")
    total_len = total_len or max(lay.length for lay in layouts)
    return torch.stack([segments_for(lay, total_len, padding_side) for lay in layouts])


def visibility(segments: torch.Tensor) -> torch.Tensor:
    """Boolean (B, T, T): True where query row i may attend to key column j."""
    B, T = segments.shape
    q = segments[:, :, None]  # (B, T, 1) row = query
    k = segments[:, None, :]  # (B, 1, T) column = key
    idx = torch.arange(T, device=segments.device)
    causal = idx[None, :, None] >= idx[None, None, :]  # (1, T, T)
    same = idx[None, :, None] == idx[None, None, :]  # (1, T, T) diagonal
    real = (q != PAD) & (k != PAD)  # (B, T, T)
    suffix_sees_prefix = (q == SUFFIX) & (k == PREFIX)
    special_sees_other_special = (q == SPECIAL) & (k == SPECIAL) & ~same
    return causal & real & ~suffix_sees_prefix & ~special_sees_other_special


def additive_mask(visible: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, T, T) bool -> (B, 1, T, T) float: 0 where visible, finfo(dtype).min elsewhere.

    finfo.min rather than -inf: a fully hidden row (padding) then softmaxes to a uniform
    distribution instead of NaN.
    """
    zero = torch.zeros((), dtype=dtype, device=visible.device)
    hidden = torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=visible.device)
    return torch.where(visible, zero, hidden)[:, None, :, :]


def gem_attention_mask(segments: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Segment ids (B, T) -> additive 4-D GEM mask (B, 1, T, T)."""
    return additive_mask(visibility(segments), dtype)


def tail_visibility(text_mask: torch.Tensor, k: int) -> torch.Tensor:
    """Which cached text k appended specials may see: (B, T) bool -> (B, k, T + k) bool.

    Each special sees the real text of its row and itself, not the other specials (the GEM
    rule, when the text was run first into a KV cache and the specials are run after it).

    >>> tail_visibility(torch.tensor([[False, True]]), 2).int().tolist()
    [[[0, 1, 1, 0], [0, 1, 0, 1]]]
    """
    B, T = text_mask.shape
    eye = torch.eye(k, dtype=torch.bool, device=text_mask.device).expand(B, k, k)
    return torch.cat([text_mask[:, None, :].expand(B, k, T), eye], dim=-1)


def position_ids(segments: torch.Tensor) -> torch.Tensor:
    """(B, T) positions counting only real tokens, so left padding does not shift them.

    >>> position_ids(torch.tensor([[0, 0, 1, 2, 3]])).tolist()
    [[0, 0, 0, 1, 2]]
    """
    real = (segments != PAD).long()
    return (real.cumsum(-1) - 1).clamp(min=0)


def special_states(hidden: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """The states at the SPECIAL positions, per row. (B, T, D), (B, T) -> (B, k, D)."""
    is_special = segments == SPECIAL
    counts = is_special.sum(1)
    if not bool((counts == counts[0]).all()) or int(counts[0]) == 0:
        raise ValueError(
            f"every row needs the same number (>= 1) of special tokens, got {counts.tolist()}"
        )
    return hidden[is_special].view(hidden.shape[0], -1, hidden.shape[-1])


def head_tail_index(segments: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Re-lay right-padded GEM rows as a left-padded *head* (the text before the specials) in
    the first H columns and a right-padded *tail* (specials + suffix) from column H on.

    Rows must read ``prefix, specials, suffix, padding`` (as the collators and ``encode`` build
    them). Returns, per new column, the source column (-1 for padding), and H. A gated model
    runs the head as the frozen base forward and only the tail with its adapter.

    >>> index, H = head_tail_index(torch.tensor([[1, 1, 2, 3, 0], [1, 2, 3, 3, 3]]))
    >>> index.tolist(), H
    ([[0, 1, 2, 3, -1, -1], [-1, 0, 1, 2, 3, 4]], 2)
    """
    real = segments != PAD
    head = (segments == PREFIX).sum(1, keepdim=True)  # (B, 1)
    tail = real.sum(1, keepdim=True) - head  # (B, 1)
    if not bool((real.cumsum(1) == real.sum(1, keepdim=True)).logical_or(real).all()):
        raise ValueError("head_tail_index needs right-padded rows (no padding before a token)")
    H, W = int(head.max()), int(tail.max())
    cols = torch.arange(H + W, device=segments.device)[None, :]  # (1, H + W)
    src = cols - (H - head)  # (B, H + W)
    keep = (src >= 0) & (cols < H + tail)
    return torch.where(keep, src, -1), H


def relay(x: torch.Tensor, index: torch.Tensor, fill: int) -> torch.Tensor:
    """Gather (B, T) ``x`` into the columns of ``index`` (B, T'); -1 columns get ``fill``."""
    taken = x.gather(1, index.clamp(min=0))
    return torch.where(index >= 0, taken, torch.full_like(taken, fill))


def batch_attention_mask(segments: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The mask a batch needs: the 4-D GEM mask (B, 1, T, T) when a rule beyond causal applies
    (a suffix, or k > 1 specials that must not see each other), else the stock 2-D padding
    mask (B, T), which keeps the model on its fast causal path and is exact there."""
    specials = (segments == SPECIAL).sum(1)
    if bool((segments == SUFFIX).any()) or bool((specials > 1).any()):
        return gem_attention_mask(segments, dtype)
    return (segments != PAD).long()
