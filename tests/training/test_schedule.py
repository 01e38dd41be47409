"""The warmup-stable-decay schedule and the shared pair pool behind benchmarks/scaling_curve.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import get_scheduler

from gemlm.training import args as args_mod
from gemlm.training import run
from gemlm.training.config import GEMTrainingConfig


def lrs(cfg: GEMTrainingConfig, steps: int) -> list[float]:
    """The learning-rate factor at every step of a stage of ``steps`` as the Trainer builds it."""
    args = args_mod.training_args(cfg, Path("/tmp/unused"), steps, 1.0, 2)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_scheduler(
        args.lr_scheduler_type,
        opt,
        num_warmup_steps=args.warmup_steps,
        num_training_steps=steps,
        scheduler_specific_kwargs=args.lr_scheduler_kwargs,
    )
    out = []
    for _ in range(steps):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def test_wsd_is_flat_then_decays_to_zero_over_the_last_share() -> None:
    cfg = GEMTrainingConfig(lr_scheduler="warmup_stable_decay", warmup_steps=5, decay_ratio=0.1)
    factors = lrs(cfg, 200)
    assert factors[0] == 0 and factors[4] < 1  # linear warm-up over 5 steps
    assert all(f == 1.0 for f in factors[5:180])  # flat
    assert all(a > b for a, b in zip(factors[180:], factors[181:], strict=False))  # decaying
    assert factors[-1] < 0.25


def test_a_short_branch_follows_the_long_run_until_its_own_decay() -> None:
    """What makes a checkpoint of the flat part an honest start for a shorter run's decay."""
    cfg = GEMTrainingConfig(lr_scheduler="warmup_stable_decay", warmup_steps=7, decay_ratio=0.1)
    long, short = lrs(cfg, 1300), lrs(cfg, 130)
    assert short[:117] == long[:117]
    assert short[117] == long[117] == 1.0  # the decay starts from the checkpoint at 117
    assert short[118] < long[118] == 1.0


def test_warmup_steps_overrides_the_ratio_and_other_schedulers_get_no_kwargs() -> None:
    cfg = GEMTrainingConfig(warmup_ratio=0.5, warmup_steps=3)
    args = args_mod.training_args(cfg, Path("/tmp/unused"), 100, 1.0, 2)
    assert args.warmup_steps == 3 and args.lr_scheduler_kwargs == {}
    args = args_mod.training_args(GEMTrainingConfig(warmup_ratio=0.5), Path("/x"), 100, 1.0, 2)
    assert args.warmup_steps == 50


@pytest.mark.parametrize(
    "bad", [{"decay_ratio": 0.0}, {"warmup_steps": -1}, {"pair_pool_steps": 10}]
)
def test_schedule_settings_are_checked(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        GEMTrainingConfig(contrastive_steps=20, **bad)


def test_the_pair_pool_is_sized_by_pair_pool_steps(asked_pairs) -> None:
    for pool, expected in ((None, 20 * 4), (50, 50 * 4)):
        cfg = GEMTrainingConfig(
            contrastive_steps=20,
            contrastive_batch_size=4,
            pair_pool_steps=pool,
            pair_mix={"ict": 1},
            train_data="/x",
        )
        with pytest.raises(asked_pairs.error):  # enough: the size is what is checked
            run._contrastive_rows(cfg, None, None, [], "")
        assert asked_pairs.calls[-1][0] == expected


def test_bf16_on_a_cpu_without_native_bf16_is_named(monkeypatch, caplog) -> None:
    monkeypatch.setattr(args_mod, "default_dtype", lambda: torch.float32)  # an AVX2-only host
    with caplog.at_level("WARNING", logger=args_mod.logger.name):
        args_mod.check_bf16(GEMTrainingConfig(bf16=False))
        assert not caplog.records
        args_mod.check_bf16(GEMTrainingConfig(bf16=True))
    assert "no native bf16" in caplog.text
    caplog.clear()
    monkeypatch.setattr(args_mod, "default_dtype", lambda: torch.bfloat16)
    args_mod.check_bf16(GEMTrainingConfig(bf16=True))
    assert not caplog.records


@pytest.mark.parametrize(("native", "want"), [(torch.float32, False), (torch.bfloat16, True)])
def test_bf16_auto_follows_the_hardware(monkeypatch, native, want) -> None:
    monkeypatch.setattr(args_mod, "default_dtype", lambda: native)
    assert args_mod.uses_bf16(GEMTrainingConfig()) is want  # auto is the default
    assert args_mod.uses_bf16(GEMTrainingConfig(bf16=True)) is True
    assert args_mod.uses_bf16(GEMTrainingConfig(bf16=False)) is False
    with pytest.raises(ValueError, match="bf16"):
        GEMTrainingConfig(bf16="yes")
