"""GEM losses as small functions; each returns named parts so every component is logged."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..masking import special_states
from .collator import IGNORE


def ntp_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-mean next-token cross-entropy. logits (B, T, V), labels (B, T) with -100 ignored."""
    shift_logits = logits[:, :-1].float()  # (B, T-1, V)
    shift_labels = labels[:, 1:]  # (B, T-1)
    return F.cross_entropy(shift_logits.flatten(0, 1), shift_labels.flatten(), ignore_index=IGNORE)


def special_readout(hidden: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Mean of the last-layer states at the special positions. (B, T, D), (B, T) -> (B, D)."""
    return special_states(hidden, segments).mean(1)


def info_nce(
    anchors: torch.Tensor, positives: torch.Tensor, logit_scale: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE with in-batch negatives on cosine similarity. (B, D), (B, D), scalar.

    >>> a = torch.eye(3); parts = info_nce(a, a, torch.tensor(100.0))
    >>> round(parts["loss"].item(), 4), parts["accuracy"].item()
    (0.0, 1.0)
    """
    a, p = F.normalize(anchors.float(), dim=-1), F.normalize(positives.float(), dim=-1)
    logits = logit_scale * a @ p.T  # (B, B): row i's positive is column i
    target = torch.arange(a.shape[0], device=a.device)
    loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    accuracy = (logits.argmax(-1) == target).float().mean()
    return {"loss": loss, "accuracy": accuracy.detach()}


class LogitScale(nn.Module):
    """CLIP-style learnable temperature: stored as a log, starts at ``init``, capped at ``max``."""

    def __init__(self, init: float = 20.0, max: float = 100.0) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(init)))
        self.max = max

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=self.max)
