"""Effect of keeping NTP in the contrastive stage: contrastive_alpha 1.0 vs lower, same everything.

Trains the same short recipe once per alpha (same seed, data, steps), then measures each model
and the base with training's before/after evaluation (``gemlm eval``'s ``quick`` suite, with the
recipe's held-out Wikipedia paragraphs as the perplexity texts). Writes one JSON.

    python -m benchmarks.alpha_ablation [--alphas 1.0 0.7] [--steps 60] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from transformers.utils import logging as hf_logging

from benchmarks._common import RESULTS, write_result
from gemlm.corpus import load_texts, train_eval_split
from gemlm.model import GEMModel, default_dtype
from gemlm.paths import data_dir
from gemlm.training.config import GEMTrainingConfig
from gemlm.training.quick_eval import quick_eval
from gemlm.training.run import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="recipes/smollm2-135m-cpu.yaml")
    ap.add_argument("--alphas", type=float, nargs="+", default=[1.0, 0.7])
    ap.add_argument("--steps", type=int, default=60, help="contrastive steps per run")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, default=None, help="rows per task (gemlm eval --limit)")
    ap.add_argument("--workdir", type=Path, default=Path("runs/alpha-ablation"))
    ap.add_argument("--out", type=Path, default=RESULTS / "alpha_ablation.json")
    args = ap.parse_args()
    hf_logging.set_verbosity_error()

    base_cfg = GEMTrainingConfig.from_yaml(
        args.recipe, [f"quick_eval_limit={json.dumps(args.limit)}"]
    )
    texts = load_texts(data_dir() / base_cfg.train_data, min_words=base_cfg.min_words)
    heldout = list(train_eval_split(texts, base_cfg.eval_rows, base_cfg.seed)[1]["text"])
    results = {"base": quick_eval(GEMModel.from_pretrained(base_cfg.model), base_cfg, heldout)}
    for alpha in args.alphas:
        out = args.workdir / f"alpha-{alpha}"
        shutil.rmtree(out, ignore_errors=True)
        cfg = GEMTrainingConfig.from_yaml(
            args.recipe,
            [
                f"output_dir={out}",
                "ntp_steps=0",
                f"contrastive_steps={args.steps}",
                f"contrastive_batch_size={args.batch_size}",
                f"contrastive_alpha={alpha}",
                "quick_eval=false",
                f"save_steps={args.steps}",
            ],
        )
        t = time.perf_counter()
        summary = train(cfg)
        minutes = (time.perf_counter() - t) / 60
        gem = GEMModel.from_pretrained(summary["model"], dtype=default_dtype())
        results[f"alpha={alpha}"] = {
            **quick_eval(gem, base_cfg, heldout),
            "train_minutes": round(minutes, 1),
        }
        print(alpha, results[f"alpha={alpha}"])
    report = {
        "recipe": args.recipe,
        "contrastive_steps": args.steps,
        "batch_size": args.batch_size,
        "ntp_steps": 0,
        "results": results,
    }
    print(json.dumps(write_result(args.out, report), indent=2))


if __name__ == "__main__":
    main()
