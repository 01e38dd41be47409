"""train_throughput times two trees: its child (``benchmarks/_train_child.py``) runs the
baseline's training module from a git worktree of 99de8ee ("current") and this tree's ("new").
On a tiny model, in float32, the ``all``-scope kinds of both sides give the same losses: at
the initial weights and over two AdamW steps (so the same gradients too), LoRA B drawn
non-zero so the adapters take part. The benchmark thus times two paths to one result; every
other kind runs too, on its side.

Tolerance: losses to 1e-4 relative (the paths sum in other orders, which moves float32 by
~1e-6; a wrong mask or a lost gradient moves the loss by O(1e-2) or more after a step at lr
1e-2).
"""

from __future__ import annotations

import math
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks import _train_child as child
from benchmarks._common import ROOT, baseline_tree
from benchmarks.train_throughput import BASELINE, kinds, run_child, save_inputs
from gemlm.model import GEMModel
from gemlm.training.losses import LogitScale
from gemlm.training.module import GEMTrainingModule

from ..training.test_module import contrastive_batch, ntp_batch


def has_revision(revision: str) -> bool:
    done = subprocess.run(["git", "cat-file", "-e", f"{revision}^{{commit}}"], cwd=ROOT,
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


def test_kinds_split_by_side() -> None:
    table = kinds(micro_batch=4)
    current = [k for k in table.values() if k["side"] == "baseline"]
    assert {k["name"].split(" / ")[2] for k in current} == {"current", "current, all GEM rows"}
    # the baseline gets only what 99de8ee's GEMTrainingModule(lm, logit_scale, alpha) takes
    assert all(set(k["options"]) <= {"alpha"} and not k["bf16_base"] for k in current)
    assert len(table) == 12 and len(current) == 5


def test_child_refuses_what_its_tree_lacks() -> None:
    kind = {"name": "x", "stage": "ntp", "options": {"no_such_option": 1}}
    with pytest.raises(SystemExit, match="no_such_option"):
        child.build(kind, torch.nn.Linear(1, 1), LogitScale())
    module = GEMTrainingModule(torch.nn.Linear(1, 1))
    batch = {"input_ids": 1, "attention_mask": 2, "position_ids": 3, "segments": 4}
    with pytest.raises(SystemExit, match="labels"):
        child.fit(module, batch)
    assert child.fit(module, {**batch, "labels": 5, "extra": 6}) == {**batch, "labels": 5}


@pytest.mark.skipif(not has_revision(BASELINE), reason=f"{BASELINE} is not in this clone")
def test_both_trees_give_the_same_losses(tiny_llama_dir: Path, tmp_path: Path) -> None:
    gem = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    batches = {
        "ntp": [ntp_batch(gem, "reconstruction", 0.5), ntp_batch(gem, "split", 0.5)],
        "every": [ntp_batch(gem, "reconstruction", 1.0)],
        "con": [contrastive_batch(gem, seed=0), contrastive_batch(gem, seed=1)],
    }
    inputs = save_inputs(
        tmp_path / "inputs.pt",
        batches,
        model=str(tiny_llama_dir),
        special_ids=gem.special_ids,
        r=4,
        lora_alpha=8,
        lora_b_std=0.05,
        lr=1e-2,
        autocast=False,
    )
    table = kinds(micro_batch=4, mask_dtype="float32")
    # the compared (all-scope) kinds first and in the same order on both sides, no warm-up:
    # both sides then start from the same weights, so their steps must match
    order = sorted(table.values(), key=lambda k: k["scope"] != "all")
    sides = {s: [k for k in order if k["side"] == s] for s in ("baseline", "new")}
    with baseline_tree(BASELINE) as base, ThreadPoolExecutor(2) as pool:
        trees = {"baseline": base, "new": ROOT}
        runs = {
            s: pool.submit(
                run_child,
                trees[s],
                inputs,
                sides[s],
                tmp_path / f"{s}.json",
                warmup=0,
                first_loss=True,
                threads=1,  # the two children run side by side
            )
            for s in sides
        }
        out: dict[str, dict[str, Any]] = {s: run.result() for s, run in runs.items()}
    assert Path(out["baseline"]["gemlm"]).is_relative_to(base)
    assert Path(out["new"]["gemlm"]).is_relative_to(ROOT)
    for stage in ("ntp", "contrastive"):
        current, new = f"{stage} / all / current", f"{stage} / all / new"
        first = out["baseline"]["first_loss"][current], out["new"]["first_loss"][new]
        assert first[0] == pytest.approx(first[1], rel=1e-4)
        steps = out["baseline"]["losses"][current], out["new"]["losses"][new]
        assert len(steps[0]) == 2 and steps[0] == pytest.approx(steps[1], rel=1e-4)
    # ntp runs first: its first step is at the initial weights (then contrastive starts from
    # the weights two ntp steps moved, on both sides alike)
    ntp = out["baseline"]["losses"]["ntp / all / current"]
    assert ntp[0] == pytest.approx(out["baseline"]["first_loss"]["ntp / all / current"], rel=1e-4)
    for side, res in out.items():  # every kind of each side ran, with finite losses
        assert set(res["seconds_per_step"]) == {k["name"] for k in sides[side]}
        assert all(math.isfinite(x) for losses in res["losses"].values() for x in losses)
