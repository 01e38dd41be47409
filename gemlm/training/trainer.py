"""``GEMTrainer``: a thin ``transformers.Trainer`` subclass; LoRA set-up; trainable checkpoints."""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import PreTrainedModel, Trainer

from ..atomic import atomic_file
from .module import GEMTrainingModule  # noqa: F401  (re-exported: callers import it from here)

TRAINABLE_FILE = "trainable.safetensors"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text")


def lora_targets(model: PreTrainedModel) -> list[str]:
    """Attention + MLP projections for the llama/mistral/qwen/gemma families; else every Linear."""
    if model.config.model_type in LORA_FAMILIES:
        return LORA_TARGETS
    out = model.get_output_embeddings()
    names = {
        n.rsplit(".", 1)[-1]
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and m is not out
    }
    if not names:
        raise ValueError(f"no Linear layers to adapt in {model.config.model_type}")
    return sorted(names)


def apply_lora(
    model: PreTrainedModel,
    special_ids: list[int],
    r: int,
    alpha: int,
    dropout: float,
    targets: list[str] | None = None,
) -> nn.Module:
    """Wrap with peft LoRA; the special-token embedding rows train too (only those rows)."""
    emb_name = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets or lora_targets(model),
        trainable_token_indices={emb_name.rsplit(".", 1)[-1]: list(special_ids)},
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft reads a property transformers 5 deprecates
        warnings.filterwarnings(
            "ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning
        )
        return get_peft_model(model, config)


class GEMTrainer(Trainer):
    """Trainer whose loss is the module's; each named part is logged; checkpoints hold only the
    trainable tensors (LoRA + special rows + logit scale, or everything for full tuning)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parts: dict[str, list[float]] = defaultdict(list)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = model(**inputs)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss ({loss.item()}) at step {self.state.global_step + 1}; stopping. "
                f"The last good checkpoint is kept in {self.args.output_dir}"
            )
        for key, value in out.items():
            if key != "loss":
                self._parts[key].append(float(value))
        return (loss, out) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._parts:
            logs.update({k: round(sum(v) / len(v), 4) for k, v in self._parts.items()})
            self._parts.clear()
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        module = self.accelerator.unwrap_model(self.model)
        with atomic_file(os.path.join(output_dir, TRAINABLE_FILE)) as tmp:  # never half-written
            safetensors.torch.save_file(module.trainable_state(), str(tmp))

    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: nn.Module | None = None
    ) -> None:
        load_trainable(model or self.model, Path(resume_from_checkpoint) / TRAINABLE_FILE)


def load_trainable(module: nn.Module, path: Path) -> None:
    """Load trainable tensors saved by ``GEMTrainer``; a missing or corrupt file is an error."""
    try:
        state = safetensors.torch.load_file(str(path))
    except Exception as exc:  # safetensors raises several types for truncated files
        raise RuntimeError(f"cannot read checkpoint {path}: {exc}") from exc
    own = dict(module.named_parameters())
    missing = [n for n, p in own.items() if p.requires_grad and n not in state]
    unknown = [n for n in state if n not in own]
    if missing or unknown:
        raise RuntimeError(
            f"checkpoint {path} does not match the model: "
            f"missing {missing[:3]}, unknown {unknown[:3]}"
        )
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor)
