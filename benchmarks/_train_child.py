"""One side of ``train_throughput`` in a process that imports that side's ``gemlm``.

``train_throughput`` runs this file by its path with ``PYTHONPATH`` set to the tree under test
(the baseline's worktree, 99de8ee by default, or this checkout), so it may use only what both
trees have: that tree's ``gemlm`` (``GEMModel.from_pretrained``, ``apply_lora``,
``SpecialGate``, ``LogitScale``, ``GEMTrainingModule``), torch and the standard library; never
``benchmarks._common``. The batches come from the parent (``--inputs``, a ``torch.save`` of
today's collators' output, the model name and the settings), so both sides train on the same
tensors.

For each kind (``--kinds``, a JSON list from the parent) the child sets the gate (attached for
``special_only``, removed for ``all``), builds that tree's ``GEMTrainingModule`` with the kind's
options and times AdamW steps over the kind's batches under bf16 autocast (``autocast: False``
in the settings runs float32, as the test does; ``bf16 base`` kinds always autocast); these
kinds use a second model, gated for good, with its frozen base Linear weights in bf16
(``bf16_frozen_linears``). Kinds share one LoRA model and one optimizer, as they did in one
process before. Adaptations to the tree:

- ``GEMTrainingModule`` lives in ``gemlm.training.module`` today and in
  ``gemlm.training.trainer`` up to 99de8ee, whose module takes only ``(lm, logit_scale,
  alpha)``: a kind whose options (``frozen_text``, ``micro_batch``, ``mask_dtype``) the tree's
  module does not take, or that needs ``bf16_frozen_linears``, stops the child with a message:
  today's fast variants cannot run on the old tree, and its kinds are the plain forward;
- batch fields the tree's ``forward`` does not take are dropped (none today: the collators
  give ``input_ids, attention_mask, position_ids, segments, labels`` in both trees; a missing
  field it needs is an error); the GEM token ids of both trees must match the batches'.

Writes ``--out`` (JSON): per kind the seconds per step of each round, the losses of its first
timed round and, with ``--first-loss``, the loss of its first batch at the initial weights
(forward only, before any step of any kind), which both sides compare.

    python benchmarks/_train_child.py --tree TREE --inputs IN.pt --kinds KINDS.json --out OUT.json
        [--rounds 1] [--warmup 1] [--first-loss] [--threads N]
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import gemlm
from gemlm.adapter import SpecialGate
from gemlm.model import GEMModel
from gemlm.training.losses import LogitScale
from gemlm.training.trainer import apply_lora

try:
    from gemlm.training.module import GEMTrainingModule
except ImportError:  # up to 99de8ee it lived beside the trainer
    from gemlm.training.trainer import GEMTrainingModule  # type: ignore[no-redef]
try:
    from gemlm.training.module import bf16_frozen_linears
except ImportError:  # a tree without it (99de8ee) runs no "bf16 base" kind
    bf16_frozen_linears = None


def load_lm(settings: dict[str, Any], seed: int) -> tuple[nn.Module, list[int]]:
    """The model with that tree's ``apply_lora``; LoRA B drawn from ``lora_b_std`` when > 0
    (peft starts it at 0, which a loss check could not see through)."""
    gem = GEMModel.from_pretrained(settings["model"], dtype="float32")
    if gem.special_ids != settings["special_ids"]:
        raise SystemExit(
            f"GEM token ids {gem.special_ids} != the batches' {settings['special_ids']}"
        )
    torch.manual_seed(seed)
    lm = apply_lora(
        gem.model, gem.special_ids, r=settings["r"], alpha=settings["lora_alpha"], dropout=0.0
    )
    if settings["lora_b_std"]:
        torch.manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in lm.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, settings["lora_b_std"])
    return lm, gem.special_ids


def set_gate(lm: nn.Module, special_ids: list[int], on: bool) -> None:
    gate = getattr(lm, "gem_gate", None)
    attached = gate is not None and gate.attached
    if on and not attached:
        SpecialGate(lm, special_ids)
    elif not on and attached:
        gate.remove()


def build(kind: dict[str, Any], lm: nn.Module, scale: LogitScale) -> nn.Module:
    """This tree's training module for ``kind``; its options must be ones the tree has."""
    opts = dict(kind["options"])
    if "mask_dtype" in opts:
        opts["mask_dtype"] = getattr(torch, opts["mask_dtype"])
    unknown = sorted(set(opts) - set(inspect.signature(GEMTrainingModule).parameters))
    if unknown:
        raise SystemExit(f"{kind['name']}: this tree's GEMTrainingModule has no {unknown}")
    if kind["stage"] == "ntp":
        return GEMTrainingModule(lm, **opts)
    return GEMTrainingModule(lm, scale, **opts)


def fit(module: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``batch`` that the module's ``forward`` takes."""
    params = inspect.signature(module.forward).parameters
    need = [
        n for n, p in params.items() if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    missing = [n for n in need if n not in batch]
    if missing:
        raise SystemExit(f"the batches lack {missing}, which this tree's forward needs")
    return {k: v for k, v in batch.items() if k in params}


def loss_of(module: nn.Module, batch: dict[str, Any], autocast: bool) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        return module(**fit(module, batch))["loss"]


def train(
    module: nn.Module, batches: list[dict], opt: torch.optim.Optimizer, autocast: bool
) -> list[float]:
    """One AdamW step per batch, the forward under bf16 autocast (or not); the losses."""
    losses = []
    for batch in batches:
        loss = loss_of(module, batch, autocast)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", required=True, help="the tree gemlm must come from")
    ap.add_argument("--inputs", required=True, help="the parent's torch.save: batches + settings")
    ap.add_argument("--kinds", required=True, help="a JSON list of the kinds to run")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=1, help="timed runs per kind, interleaved")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per kind first")
    ap.add_argument("--first-loss", action="store_true", help="loss at the initial weights")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    assert Path(gemlm.__file__).resolve().is_relative_to(Path(args.tree).resolve()), gemlm
    inputs = torch.load(args.inputs, weights_only=True)
    settings, batches = inputs["settings"], inputs["batches"]
    kinds = json.loads(Path(args.kinds).read_text(encoding="utf-8"))
    lm, special_ids = load_lm(settings, seed=0)
    scale = LogitScale()
    models = {False: (lm, scale)}
    if any(k["bf16_base"] for k in kinds):
        if bf16_frozen_linears is None:
            raise SystemExit("this tree has no bf16_frozen_linears: no 'bf16 base' kinds")
        lm16, _ = load_lm(settings, seed=0)
        set_gate(lm16, special_ids, on=True)
        bf16_frozen_linears(lm16)
        models[True] = (lm16, LogitScale())
    params = [p for m, s in models.values() for p in [*m.parameters(), *s.parameters()]]
    opt = torch.optim.AdamW([p for p in params if p.requires_grad], lr=settings["lr"])

    def module_of(kind: dict[str, Any]) -> tuple[nn.Module, bool]:
        """The kind's module (the gate set first) and whether it runs under autocast."""
        model, logit_scale = models[kind["bf16_base"]]
        if not kind["bf16_base"]:  # the gated copy stays gated
            set_gate(model, special_ids, on=kind["scope"] == "special_only")
        return build(kind, model, logit_scale), settings["autocast"] or kind["bf16_base"]

    out: dict[str, Any] = {"gemlm": gemlm.__file__, "torch_threads": torch.get_num_threads()}
    if args.first_loss:  # before any step: every kind sees the initial weights
        out["first_loss"] = {}
        for kind in kinds:
            module, autocast = module_of(kind)
            loss = loss_of(module, batches[kind["batches"]][0], autocast)
            out["first_loss"][kind["name"]] = float(loss.detach())
    for kind in kinds:
        module, autocast = module_of(kind)
        train(module, batches[kind["batches"]][: args.warmup], opt, autocast)
    out["seconds_per_step"] = {k["name"]: [] for k in kinds}
    out["losses"] = {}
    for _ in range(args.rounds):
        for kind in kinds:
            (module, autocast), data = module_of(kind), batches[kind["batches"]]
            t = time.perf_counter()
            losses = train(module, data, opt, autocast)
            out["seconds_per_step"][kind["name"]].append((time.perf_counter() - t) / len(data))
            out["losses"].setdefault(kind["name"], losses)
    Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
