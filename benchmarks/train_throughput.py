"""Training-step time: the training forward of ``--baseline`` ("current", 99de8ee: before the
fast paths) vs this tree's GEMTrainingModule ("new"), both stages and both adapter scopes, on
the same batches.

    python -m benchmarks.train_throughput [--baseline 99de8ee] [--steps 3] [--rounds 2]
        [--micro-batch 32] [--seed 2] [--out FILE.json]

What runs where, as in ``engine_parity``: this process builds the batches once with today's
collators and saves them (``torch.save``, with the model name and the settings) to a temporary
folder; ``--baseline`` is checked out into a temporary ``git worktree add --detach``; child
processes (``_train_child.py``, run by path with ``PYTHONPATH=<tree>``) load the model with
*that tree's* ``gemlm``, apply its ``apply_lora`` (r=16 + the GEM rows) and time AdamW steps of
its ``GEMTrainingModule`` under bf16 autocast. The baseline child runs the "current" kinds,
this tree's child the "new" ones, alternating B N N B ... over ``--rounds`` (one timed round
per child after a one-step warm-up of every kind); the best round per kind is kept, and the
worktree is removed in ``finally``. Each side's first child also computes the loss of every
kind's first batch at the initial weights: the ``all`` kinds must agree across the two trees
(``first_step_loss``; one forward of a different shape under bf16 autocast, so equal to ~1e-3,
not bit for bit; ``tests/benchmarks/test_train_throughput.py`` checks them, and two steps of
losses, in float32 on a tiny model).

* mixed NTP: 8 x 256-token Wikipedia chunks, 20% of rows with the GEM token (reconstruction).
  ``current`` = one forward over every row + logits everywhere; ``new`` = logits only where a
  label follows (all) / the frozen text without autograd and plain rows skipped (special_only).
  The same-batch ratio for special_only is large because most rows carry no gradient; the
  ``all GEM rows`` kinds (every row gets the token, what special_only recipes now train on)
  compare the cost per gradient-carrying row.
* contrastive: 32 sentence pairs (<= 48 tokens), PromptEOL template, alpha 0.9 as in the v1
  recipes. ``new`` = length-sorted micro-batches (all) / the text without autograd and only the
  GEM token with grad (special_only, where the NTP term is inert and skipped).

``bf16 base`` kinds run a second model, gated for good, whose frozen base Linear weights are
stored in bf16 as the special_only recipes do (``bf16_frozen_linears``: bit-identical results).
The "new" variants (``frozen_text``, ``micro_batch``, ``mask_dtype``, ``bf16_frozen_linears``)
do not exist in 99de8ee, so they run on this tree only; a ``--baseline`` that has them could run
them too, but the script sends the baseline only the "current" kinds (the plain module, which
every tree has).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from benchmarks._common import (
    RESULTS,
    ROOT,
    baseline_tree,
    collate_batches,
    command_line,
    tree_env,
    wiki_texts,
    write_result,
)
from gemlm.model import GEMModel
from gemlm.training.collator import ContrastiveCollator, GEMCollator
from gemlm.training.data import tokenize_and_chunk, tokenize_texts

CHILD = Path(__file__).resolve().parent / "_train_child.py"
BASELINE = "99de8ee"  # GEMTrainingModule.forward before the fast paths (dbb0d6a added them)
PROMPT, SUFFIX = 'This sentence : "', '" means in one word:"'
SIDES = ("baseline", "new")


def kinds(micro_batch: int, mask_dtype: str = "bfloat16") -> dict[str, dict[str, Any]]:
    """Every timed kind by its result key ``stage / scope / variant``: which batches, which
    ``GEMTrainingModule`` options (its keyword arguments; ``mask_dtype`` by torch name), whether
    it runs on the bf16-base model, and on which side (``current`` variants: the baseline)."""
    bf = {"mask_dtype": mask_dtype}
    frozen = {"frozen_text": True, "micro_batch": micro_batch, **bf}
    frozen16 = {**frozen, "mask_dtype": "bfloat16"}  # bf16 weights run under autocast only
    rows: list[tuple[str, str, str, str, dict[str, Any]]] = [
        ("ntp", "all", "current", "ntp", {}),
        ("ntp", "all", "new", "ntp", bf),
        ("ntp", "special_only", "current", "ntp", {}),
        ("ntp", "special_only", "new", "ntp", frozen),
        ("ntp", "special_only", "current, all GEM rows", "every", {}),
        ("ntp", "special_only", "new, all GEM rows", "every", frozen),
        ("ntp", "special_only", "new, all GEM rows, bf16 base", "every", frozen16),
        ("contrastive", "all", "current", "con", {"alpha": 0.9}),
        ("contrastive", "all", "new", "con", {"alpha": 0.9, "micro_batch": micro_batch, **bf}),
        ("contrastive", "special_only", "current", "con", {"alpha": 0.9}),
        ("contrastive", "special_only", "new", "con", frozen),
        ("contrastive", "special_only", "new, bf16 base", "con", frozen16),
    ]
    return {
        f"{stage} / {scope} / {variant}": {
            "name": f"{stage} / {scope} / {variant}",
            "stage": stage,
            "scope": scope,
            "batches": batches,
            "options": options,
            "bf16_base": "bf16 base" in variant,
            "side": "baseline" if variant.startswith("current") else "new",
        }
        for stage, scope, variant, batches, options in rows
    }


def save_inputs(path: Path, batches: dict[str, list[dict]], **settings: Any) -> Path:
    """The children's inputs: the batches by name and the settings (``model``, ``special_ids``,
    ``r``, ``lora_alpha``, ``lora_b_std``, ``lr``, ``autocast``)."""
    torch.save({"batches": batches, "settings": settings}, path)
    return path


def run_child(
    tree: Path,
    inputs: Path,
    kind_list: list[dict[str, Any]],
    out: Path,
    *,
    warmup: int = 1,
    first_loss: bool = False,
    threads: int = 0,
) -> dict[str, Any]:
    """One timed round of ``kind_list`` in a child importing ``gemlm`` from ``tree``
    (``threads``: torch threads of the child, 0 for torch's default)."""
    spec = out.with_suffix(".kinds.json")
    spec.write_text(json.dumps(kind_list), encoding="utf-8")
    cmd = [sys.executable, str(CHILD), "--tree", str(tree), "--inputs", str(inputs)]
    cmd += ["--kinds", str(spec), "--out", str(out), "--warmup", str(warmup)]
    cmd += ["--threads", str(threads)] + (["--first-loss"] if first_loss else [])
    done = subprocess.run(cmd, env=tree_env(tree), cwd=tree, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{tree}: child failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text(encoding="utf-8"))


def build_batches(model: str, steps: int, seed: int) -> tuple[dict[str, list[dict]], list[int]]:
    """Today's collators over Wikipedia: mixed NTP (``ntp``), every row a GEM row (``every``),
    contrastive pairs (``con``); and the GEM token ids they use."""
    gem = GEMModel.from_pretrained(model, dtype="float32")  # its tokenizer and GEM ids
    tok = gem.tokenizer
    texts = wiki_texts("AA/wiki_00")
    chunks = tokenize_and_chunk(texts, tok, 256)["input_ids"][: 8 * steps]
    sents = tokenize_texts(texts.select(range(32 * steps)), tok, 48, prompt=PROMPT)["input_ids"]
    common = dict(special_ids=gem.special_ids, pad_id=gem.pad_id, mask_dtype=torch.bfloat16, seed=0)
    mixed = GEMCollator(gem_prob=0.2, format="reconstruction", **{**common, "seed": seed})
    every = GEMCollator(gem_prob=1.0, format="reconstruction", **common)
    suffix = tok(SUFFIX, add_special_tokens=False)["input_ids"]
    protect = len(tok(PROMPT)["input_ids"])
    pairs = ContrastiveCollator(dropout=0.1, protect=protect, suffix_ids=suffix, **common)
    batches = {
        "ntp": collate_batches(mixed, chunks, 8),
        "every": collate_batches(every, chunks, 8),
        "con": collate_batches(pairs, sents, 32),
    }
    return batches, gem.special_ids


def short_rev(revision: str) -> str:
    done = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the 'current' column")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per kind per round")
    ap.add_argument("--rounds", type=int, default=2, help="children per side, alternating")
    ap.add_argument("--micro-batch", type=int, default=32, help="contrastive rows per forward")
    ap.add_argument(
        "--seed",
        type=int,
        default=2,
        help="GEM placement seed of the mixed batches (2: 5 of 24 rows, the 20%% of gem_prob; "
        "seed 0 happens to draw none in 24)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "train_throughput.json")
    args = ap.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    batches, special_ids = build_batches(args.model, args.steps, args.seed)
    table = kinds(args.micro_batch)
    per_side = {s: [k for k in table.values() if k["side"] == s] for s in SIDES}
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = save_inputs(
            Path(tmp) / "inputs.pt",
            batches,
            model=args.model,
            special_ids=special_ids,
            r=16,
            lora_alpha=32,
            lora_b_std=0.0,
            lr=1e-5,
            autocast=True,
        )
        with baseline_tree(args.baseline) as base:
            trees = {"baseline": base, "new": ROOT}
            for r in range(args.rounds):
                for side in SIDES if r % 2 == 0 else SIDES[::-1]:
                    out = Path(tmp) / f"{side}{r}.json"
                    res = run_child(trees[side], inputs, per_side[side], out, first_loss=r == 0)
                    results[side].append(res)
                    for name, secs in res["seconds_per_step"].items():
                        print(f"round {r} {side}: {name:48s} {secs[0]:6.2f} s/step", flush=True)

    best = {
        name: min(s for res in results[k["side"]] for s in res["seconds_per_step"][name])
        for name, k in table.items()
    }
    first = {
        name: next(res["first_loss"][name] for res in results[k["side"]] if "first_loss" in res)
        for name, k in table.items()
    }

    def ratio(current: str, new: str) -> float:
        return round(best[current] / best[new], 2)

    ntp_sp, con_sp = "ntp / special_only / ", "contrastive / special_only / "
    gem_rows = sum(int((b["segments"] == 2).any(1).sum()) for b in batches["ntp"])
    n = args.steps
    report = {
        "model": args.model,
        "setup": "LoRA r=16 + GEM rows, bf16 autocast, AdamW, CPU; 'current' = GEMTrainingModule "
        "of --baseline (a git worktree), 'new' = this tree's; one child process per side and "
        "round, alternating; best round per kind",
        "baseline": short_rev(args.baseline),
        "new": short_rev("HEAD"),
        "command": command_line(),
        "torch_threads": results["new"][0]["torch_threads"],
        "steps_per_round": n,
        "rounds": args.rounds,
        "ntp_batch": f"8 x 256 tokens, {gem_rows}/{8 * n} rows with the GEM token",
        "contrastive_batch": "32 pairs of <= 48-token sentences + PromptEOL template",
        "contrastive_micro_batch": args.micro_batch,
        "seconds_per_step": {name: round(v, 3) for name, v in best.items()},
        "speedup_current_over_new": {
            "ntp / all": ratio("ntp / all / current", "ntp / all / new"),
            "ntp / special_only": ratio(ntp_sp + "current", ntp_sp + "new"),
            "ntp / special_only, all-GEM batches": ratio(
                ntp_sp + "current, all GEM rows", ntp_sp + "new, all GEM rows"
            ),
            "ntp / special_only, all-GEM batches, bf16 base": ratio(
                ntp_sp + "current, all GEM rows", ntp_sp + "new, all GEM rows, bf16 base"
            ),
            "contrastive / all": ratio("contrastive / all / current", "contrastive / all / new"),
            "contrastive / special_only": ratio(con_sp + "current", con_sp + "new"),
            "contrastive / special_only, bf16 base": ratio(
                con_sp + "current", con_sp + "new, bf16 base"
            ),
        },
        # the all-scope kinds compute one loss on both trees (special_only "new" drops terms
        # without gradient, so its loss is another number by design)
        "first_step_loss": {name: round(v, 5) for name, v in first.items()},
        "first_step_loss_rel_diff": {
            f"{stage} / all": abs(first[f"{stage} / all / current"] - first[f"{stage} / all / new"])
            / abs(first[f"{stage} / all / new"])
            for stage in ("ntp", "contrastive")
        },
    }
    print(json.dumps(write_result(args.out, report), indent=2))


if __name__ == "__main__":
    main()
