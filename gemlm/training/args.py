"""How each training stage is optimised: ``TrainingArguments`` from a recipe, the scheduler's
settings (warmup-stable-decay), and the host checks that go with them."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments

from ..loading import default_dtype
from .config import GEMTrainingConfig

logger = logging.getLogger(__name__)


def training_args(
    cfg: GEMTrainingConfig, out: Path, steps: int, lr: float, batch: int, sequential: bool = False
) -> TrainingArguments:
    """The Trainer's arguments for one stage; ``sequential`` keeps the dataset's order (rows
    already grouped into batches), else the rows are shuffled."""
    return TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        learning_rate=lr,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        lr_scheduler_type=cfg.lr_scheduler,
        lr_scheduler_kwargs=scheduler_kwargs(cfg, steps),
        warmup_steps=int(cfg.warmup_ratio * steps)
        if cfg.warmup_steps is None
        else cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        bf16=uses_bf16(cfg),
        use_cpu=not torch.cuda.is_available(),
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        report_to=[],
        remove_unused_columns=False,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
        train_sampling_strategy="sequential" if sequential else "random",
        ddp_backend="gloo" if distributed() and not torch.cuda.is_available() else None,
        ddp_find_unused_parameters=cfg.tuning == "full",
        disable_tqdm=False,
    )


def scheduler_kwargs(cfg: GEMTrainingConfig, steps: int) -> dict[str, Any]:
    """warmup_stable_decay: the last ``decay_ratio`` of the stage decays to 0 (1-sqrt, as in
    Hägele et al. 2024); any checkpoint of the flat part can end with its own short decay."""
    if cfg.lr_scheduler != "warmup_stable_decay":
        return {}
    return {"num_decay_steps": max(1, round(cfg.decay_ratio * steps)), "decay_type": "1-sqrt"}


def distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def uses_bf16(cfg: GEMTrainingConfig) -> bool:
    """``bf16: auto`` resolved: on where the hardware computes bf16 natively."""
    if cfg.bf16 == "auto":
        return torch.cuda.is_available() or default_dtype() == torch.bfloat16
    return bool(cfg.bf16)


def check_bf16(cfg: GEMTrainingConfig) -> None:
    """bf16 autocast on a CPU without native bf16 (no AVX512-BF16 / AMX) is emulated: measured
    on an AVX2-only host, an NTP step took ~9 min in bf16 vs 62 s in fp32. Say so up front."""
    if cfg.bf16 is True and not torch.cuda.is_available() and default_dtype() != torch.bfloat16:
        logger.warning(
            "bf16: true, but this CPU has no native bf16 (AVX512-BF16 / AMX): autocast is "
            "emulated and training runs several times slower than in fp32; set bf16: auto "
            "(or false)"
        )
