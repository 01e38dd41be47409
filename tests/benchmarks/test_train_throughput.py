"""train_throughput's "current" baseline computes the same loss and gradients as today's
``GEMTrainingModule`` (the ``all`` scope): the benchmark times two paths to one result."""

from __future__ import annotations

import pytest
import torch

from benchmarks.train_throughput import CurrentModule
from gemlm.training.losses import LogitScale
from gemlm.training.module import GEMTrainingModule

from ..training.test_module import (
    assert_same_grads,
    contrastive_batch,
    grads_of,
    lora_model,
    ntp_batch,
)


@pytest.mark.parametrize("alpha", [None, 1.0, 0.9])  # None: the mixed-NTP stage
def test_current_module_equals_the_training_module(tiny_dir, alpha) -> None:
    gem, lm = lora_model(tiny_dir, 1, gated=False)
    if alpha is None:
        batch = ntp_batch(gem, "reconstruction", gem_prob=0.5)
        current, new = CurrentModule(lm), GEMTrainingModule(lm)
    else:
        batch, scale = contrastive_batch(gem), LogitScale()
        current, new = CurrentModule(lm, scale, alpha), GEMTrainingModule(lm, scale, alpha)
    out_current, g_current = grads_of(current, batch)
    out_new, g_new = grads_of(new, batch)
    torch.testing.assert_close(out_current["loss"], out_new["loss"], rtol=1e-5, atol=0)
    assert_same_grads(g_current, g_new)
