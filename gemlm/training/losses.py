"""GEM losses as small functions; each returns named parts so every component is logged."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .collator import IGNORE


def ntp_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-mean next-token cross-entropy. logits (B, T, V), labels (B, T) with -100 ignored."""
    shift_logits = logits[:, :-1].float()  # (B, T-1, V)
    shift_labels = labels[:, 1:]  # (B, T-1)
    return F.cross_entropy(shift_logits.flatten(0, 1), shift_labels.flatten(), ignore_index=IGNORE)


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    logit_scale: torch.Tensor,
    negatives: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE with in-batch negatives on cosine similarity. (B, D), (B, D), scalar.

    With ``negatives`` (B, D), mined hard negatives, each anchor ranks its positive against
    every positive and every negative of the batch (B x 2B); the positive-to-anchor direction
    stays B x B (a negative is no query).

    >>> a = torch.eye(3); parts = info_nce(a, a, torch.tensor(100.0))
    >>> round(parts["loss"].item(), 4), parts["accuracy"].item()
    (0.0, 1.0)
    >>> info_nce(a, a, torch.tensor(100.0), negatives=a.flip(0))["accuracy"].item()
    1.0
    """
    a, p = F.normalize(anchors.float(), dim=-1), F.normalize(positives.float(), dim=-1)
    logits = logit_scale * a @ p.T  # (B, B): row i's positive is column i
    target = torch.arange(a.shape[0], device=a.device)
    back = F.cross_entropy(logits.T, target)
    if negatives is not None:  # (B, 2B): the mined negatives are extra columns
        n = F.normalize(negatives.float(), dim=-1)
        logits = torch.cat([logits, logit_scale * a @ n.T], dim=1)
    loss = (F.cross_entropy(logits, target) + back) / 2
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


def distill_kl(
    student: torch.Tensor,
    teacher: torch.Tensor,
    logit_scale: torch.Tensor,
    temperature: float,
    anchors: int | None = None,
) -> torch.Tensor:
    """KL(teacher || student) between in-batch similarity distributions, rows and columns.

    ``student`` (N, D) and ``teacher`` (N, D_t) hold B = ``anchors`` anchors (default N / 2)
    then their B positives, then (N = 3B) their B mined negatives; each anchor's softmax over
    the other N - B texts (and each positive's over the anchors) is pulled towards the
    teacher's, whose cosines are divided by ``temperature``.

    >>> e = torch.eye(4)[:, :3]; round(distill_kl(e, e, torch.tensor(20.0), 0.05).item(), 6)
    0.0
    """
    B = anchors or student.shape[0] // 2
    s, t = F.normalize(student.float(), dim=-1), F.normalize(teacher.float(), dim=-1)
    s_logits = logit_scale * s[:B] @ s[B:].T  # (B, N - B)
    t_logits = (t[:B] @ t[B:].T) / temperature  # (B, N - B)

    def kl(sl: torch.Tensor, tl: torch.Tensor) -> torch.Tensor:
        return F.kl_div(
            F.log_softmax(sl, -1), F.log_softmax(tl, -1), log_target=True, reduction="batchmean"
        )

    back = kl(s_logits[:, :B].T, t_logits[:, :B].T)  # positives over the anchors
    return (kl(s_logits, t_logits) + back) / 2


def distill_cosine(
    student: torch.Tensor, teacher: torch.Tensor, proj: nn.Module | None = None
) -> torch.Tensor:
    """Mean of ``1 - cos(W s, t)`` over the rows: each embedding regressed onto its teacher's.

    ``student`` (N, D) GEM readouts (anchors and positives), ``teacher`` (N, T) the teacher's
    vectors of the same texts, ``proj`` the bias-free map D -> T (None: the identity, D == T).
    The readout is normalised before the map: the loss and its gradients are the same in exact
    arithmetic (a cosine after a linear map without bias ignores the scale of ``s``), but raw
    readouts of a causal LM have norms in the hundreds, so the unit vector (the embedding
    InfoNCE and serving use) keeps the map's inputs and its gradients well scaled under bf16.

    >>> e = torch.eye(3); round(distill_cosine(2 * e, e).item(), 6)
    0.0
    """
    s = F.normalize(student.float(), dim=-1)
    if proj is not None:
        s = proj(s).float()  # (N, T)
    if s.shape != teacher.shape:
        raise ValueError(f"student {tuple(s.shape)} vs teacher {tuple(teacher.shape)}: need a map")
    t = F.normalize(teacher.float(), dim=-1)
    return (1 - (F.normalize(s, dim=-1) * t).sum(-1)).mean()
