"""``GEMTrainer``: a thin ``transformers.Trainer`` subclass, plus the module it trains."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn
from transformers import PreTrainedModel, Trainer

from .losses import LogitScale, info_nce, ntp_loss, special_readout

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
    from peft import LoraConfig, get_peft_model

    emb_name = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets or lora_targets(model),
        trainable_token_indices={emb_name.rsplit(".", 1)[-1]: list(special_ids)},
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


class GEMTrainingModule(nn.Module):
    """The causal LM plus what a stage adds (the logit scale); ``forward`` returns named losses.

    Without a logit scale it is the mixed-NTP stage; with one, the contrastive stage, whose
    batch holds B anchors then B positives and whose loss is
    ``alpha * InfoNCE + (1 - alpha) * NTP(anchors)``.
    """

    def __init__(self, lm: nn.Module, logit_scale: LogitScale | None = None, alpha: float = 1.0):
        super().__init__()
        self.lm = lm
        self.logit_scale = logit_scale
        self.alpha = alpha

    def forward(self, input_ids, attention_mask, position_ids, segments, labels) -> dict[str, Any]:
        common = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
        }
        if self.logit_scale is None:
            logits = self.lm(**common, use_cache=False).logits  # (B, T, V)
            loss = ntp_loss(logits, labels)
            return {"loss": loss, "ntp": loss.detach()}
        hidden = self.lm.get_decoder()(**common, use_cache=False).last_hidden_state  # (2B, T, D)
        emb = special_readout(hidden, segments)  # (2B, D)
        B = emb.shape[0] // 2
        scale = self.logit_scale()
        parts = info_nce(emb[:B], emb[B:], scale)
        out = {
            "contrastive": parts["loss"].detach(),
            "accuracy": parts["accuracy"],
            "logit_scale": scale.detach(),
        }
        loss = self.alpha * parts["loss"]
        if self.alpha < 1:
            logits = self.lm.get_output_embeddings()(hidden[:B])  # anchors only: (B, T, V)
            ntp = ntp_loss(logits, labels[:B])
            loss = loss + (1 - self.alpha) * ntp
            out["ntp"] = ntp.detach()
        return {"loss": loss, **out}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {
            n: p.detach().contiguous().clone()
            for n, p in self.named_parameters()
            if p.requires_grad
        }


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
        tmp = os.path.join(output_dir, f".{TRAINABLE_FILE}.tmp")
        safetensors.torch.save_file(module.trainable_state(), tmp)
        os.replace(tmp, os.path.join(output_dir, TRAINABLE_FILE))  # never half-written

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
