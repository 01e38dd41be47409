"""GEM losses: next-token cross-entropy, special-token readout, InfoNCE and the logit scale."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gemlm.training.collator import IGNORE
from gemlm.training.losses import LogitScale, info_nce, ntp_loss

V = 11


def logits_and_labels(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 6, V, generator=g)
    labels = torch.randint(0, V, (2, 6), generator=g)
    labels[0, 3] = IGNORE
    labels[1, 4:] = IGNORE
    return logits, labels


# --------------------------------------------------------------------------------- ntp_loss


def test_ntp_loss_equals_cross_entropy_on_shifted_logits():
    logits, labels = logits_and_labels()
    expected = F.cross_entropy(
        logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=IGNORE
    )
    assert torch.allclose(ntp_loss(logits, labels), expected)


def test_ntp_loss_is_the_mean_over_real_targets():
    logits, labels = logits_and_labels()
    logp = logits.log_softmax(-1)
    terms = [
        -logp[b, t, labels[b, t + 1]]
        for b in range(2)
        for t in range(5)
        if labels[b, t + 1] != IGNORE
    ]
    assert len(terms) == 7
    assert torch.allclose(ntp_loss(logits, labels), torch.stack(terms).mean())


def test_ntp_loss_ignores_positions_labelled_minus_100():
    logits, labels = logits_and_labels()
    before = ntp_loss(logits, labels)
    changed = logits.clone()
    changed[0, 2] += 10 * torch.randn(V)  # predicts labels[0, 3] == IGNORE
    changed[1, 3:] += 10 * torch.randn(3, V)  # predict labels[1, 4:] == IGNORE (and the end)
    assert torch.allclose(ntp_loss(changed, labels), before)


def test_ntp_loss_does_use_real_positions():
    logits, labels = logits_and_labels()
    changed = logits.clone()
    changed[0, 3] += 10 * torch.randn(V)  # predicts labels[0, 4], a real target
    assert not torch.allclose(ntp_loss(changed, labels), ntp_loss(logits, labels))


def test_ntp_loss_never_targets_the_first_label():
    logits, labels = logits_and_labels()
    other = labels.clone()
    other[:, 0] = (labels[:, 0] + 1) % V
    assert torch.allclose(ntp_loss(logits, other), ntp_loss(logits, labels))


# --------------------------------------------------------------------------------- info_nce


def test_info_nce_is_zero_for_identical_well_separated_pairs():
    anchors = 3 * torch.eye(4, 8)
    parts = info_nce(anchors, torch.eye(4, 8), torch.tensor(100.0))
    assert parts["loss"].item() == pytest.approx(0.0, abs=1e-6)
    assert parts["accuracy"].item() == 1.0


def test_info_nce_equals_log_batch_for_indistinguishable_rows():
    B = 5
    same = torch.ones(B, 8)
    parts = info_nce(same, same, torch.tensor(20.0))
    assert parts["loss"].item() == pytest.approx(math.log(B), rel=1e-5)


def test_info_nce_accuracy_is_zero_for_swapped_pairs():
    a = torch.eye(4, 8)
    parts = info_nce(a, a.roll(1, dims=0), torch.tensor(100.0))
    assert parts["accuracy"].item() == 0.0
    assert parts["loss"].item() > 10


def test_info_nce_is_symmetric():
    g = torch.Generator().manual_seed(0)
    a, p = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    scale = torch.tensor(20.0)
    assert torch.allclose(info_nce(a, p, scale)["loss"], info_nce(p, a, scale)["loss"])


def test_info_nce_gradient_reaches_both_inputs_and_the_scale():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 8, generator=g).requires_grad_()
    p = torch.randn(4, 8, generator=g).requires_grad_()
    scale = LogitScale()
    parts = info_nce(a, p, scale())
    parts["loss"].backward()
    for grad in (a.grad, p.grad, scale.log_scale.grad):
        assert grad is not None
        assert torch.isfinite(grad).all()
        assert grad.abs().sum() > 0
    assert not parts["accuracy"].requires_grad


# ------------------------------------------------------------------------------- LogitScale


def test_logit_scale_starts_at_init():
    assert LogitScale()().item() == pytest.approx(20.0)
    assert LogitScale(init=7.0)().item() == pytest.approx(7.0)


def test_logit_scale_is_clamped_at_max():
    scale = LogitScale()
    with torch.no_grad():
        scale.log_scale.fill_(10.0)  # exp(10) ~ 22026
    assert scale().item() == 100.0
    assert LogitScale(init=50.0, max=30.0)().item() == 30.0


def test_logit_scale_parameter_receives_gradient():
    scale = LogitScale()
    assert [p is scale.log_scale for p in scale.parameters()] == [True]
    scale().backward()
    assert scale.log_scale.grad.item() == pytest.approx(20.0)  # d exp(x) / dx = exp(x)
