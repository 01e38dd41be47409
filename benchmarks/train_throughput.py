"""Training-step throughput: plain NTP vs mixed GEM NTP vs contrastive, same process, same batches.

Plain and mixed steps run on the very same token chunks (the mixed collator inserts the GEM
token into ``gem_prob`` of them and passes the 4-D GEM mask); the contrastive step runs on
sentences from the same text. Kinds are interleaved over rounds and the best round is kept.
Setup as in the CPU recipe: LoRA, bf16 autocast, AdamW.

    python benchmarks/train_throughput.py [--steps 4] [--rounds 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from gemlm.model import GEMModel
from gemlm.paths import data_dir
from gemlm.training.collator import ContrastiveCollator, GEMCollator
from gemlm.training.data import load_texts, tokenize_and_chunk, tokenize_texts
from gemlm.training.losses import LogitScale
from gemlm.training.trainer import GEMTrainingModule, apply_lora


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per kind per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--gem-prob", type=float, default=0.2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/train_throughput.json"))
    args = ap.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)

    gem = GEMModel.from_pretrained(args.model, dtype="float32")
    lm = apply_lora(gem.model, gem.special_ids, r=16, alpha=32, dropout=0.0)
    texts = load_texts(data_dir() / "wikipedia_en_wikiextractor/AA/wiki_00")
    n = args.steps * args.batch_size
    chunks = tokenize_and_chunk(texts, gem.tokenizer, args.seq_len)["input_ids"][:n]
    sents = tokenize_texts(texts.select(range(n * 2)), gem.tokenizer, 48)["input_ids"]
    common = dict(special_ids=gem.special_ids, pad_id=gem.pad_id, mask_dtype=torch.bfloat16, seed=0)
    plain = GEMCollator(gem_prob=0.0, **common)
    mixed = GEMCollator(gem_prob=args.gem_prob, format="reconstruction", **common)
    every = GEMCollator(gem_prob=1.0, format="reconstruction", **common)  # worst case: all rows
    contrastive = ContrastiveCollator(dropout=0.1, **common)
    bs = args.batch_size

    def batched(collate, rows: list[list[int]], size: int) -> list[dict]:
        return [
            collate([{"input_ids": r} for r in rows[i : i + size]])
            for i in range(0, len(rows), size)
        ]

    batches = {
        "plain_ntp": batched(plain, chunks, bs),
        "mixed_gem_ntp": batched(mixed, chunks, bs),
        "gem_every_row": batched(every, chunks, bs),
        "contrastive": batched(contrastive, sents, 2 * bs),
    }
    modules = {
        "plain_ntp": GEMTrainingModule(lm),
        "mixed_gem_ntp": GEMTrainingModule(lm),
        "gem_every_row": GEMTrainingModule(lm),
        "contrastive": GEMTrainingModule(lm, LogitScale(), alpha=0.9),
    }
    params = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)

    def step(module: GEMTrainingModule, batch: dict) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module(**batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for kind, bl in batches.items():  # warm-up
        step(modules[kind], bl[0])
    best: dict[str, float] = {}
    for r in range(args.rounds):
        for kind, bl in batches.items():
            t = time.perf_counter()
            for b in bl:
                step(modules[kind], b)
            dt = time.perf_counter() - t
            best[kind] = min(best.get(kind, float("inf")), dt)
            print(f"round {r}: {kind:14s} {dt / len(bl):6.2f} s/step", flush=True)

    tokens = {k: int(sum((b["segments"] != 0).sum() for b in bl)) for k, bl in batches.items()}
    results = {
        k: {
            "tokens": tokens[k],
            "seconds": round(best[k], 2),
            "tok_per_s": round(tokens[k] / best[k], 1),
        }
        for k in batches
    }
    gem_rows = sum(int((b["segments"] == 2).any(1).sum()) for b in batches["mixed_gem_ntp"])
    per_tok_plain = best["plain_ntp"] / tokens["plain_ntp"]
    per_tok_mixed = best["mixed_gem_ntp"] / tokens["mixed_gem_ntp"]
    per_tok_every = best["gem_every_row"] / tokens["gem_every_row"]
    report = {
        "model": args.model,
        "setup": "LoRA r=16 + special rows, bf16 autocast, AdamW, CPU",
        "batch_size": bs,
        "seq_len": args.seq_len,
        "gem_prob": args.gem_prob,
        "gem_rows_in_mixed_batches": f"{gem_rows}/{n}",
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "results": results,
        "mixed_gem_step_overhead_vs_plain_per_token": round(per_tok_mixed / per_tok_plain - 1, 4),
        "every_row_gem_overhead_vs_plain_per_token": round(per_tok_every / per_tok_plain - 1, 4),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
