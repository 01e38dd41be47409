"""Cost of ``adapter_scope="special_only"`` vs ``"all"``, measured side by side in one process.

Training: the same LoRA model (r=16 + the special rows, bf16 autocast, AdamW) steps on the same
mixed-NTP batches (8 x 256 tokens, 20% of rows with the GEM token) and contrastive batches
(32 pairs of <= 48-token sentences) with the gate attached and detached, rounds interleaved,
best round kept. Inference (bf16): the deployed forms, i.e. ``all`` = LoRA merged into the
weights (a plain HF model) vs ``special_only`` = base + gated peft adapter, on a plain-text
prefill (what generation and MMLU see) and on ``encode`` of STS-B sentences (a gated model
encodes in two calls: the text as the base forward, then the GEM token over its cache).

    python -m benchmarks.adapter_scope [--rounds 2] [--out benchmarks/results/adapter_scope.json]
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Callable
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from benchmarks._common import (
    RESULTS,
    best_of,
    collate_batches,
    stsb_rows,
    train_steps,
    wiki_texts,
    write_result,
)
from gemlm.adapter import SpecialGate
from gemlm.model import GEMModel, default_dtype
from gemlm.training.collator import ContrastiveCollator, GEMCollator
from gemlm.training.data import tokenize_and_chunk, tokenize_texts
from gemlm.training.losses import LogitScale
from gemlm.training.trainer import GEMTrainingModule, apply_lora


def training(args: argparse.Namespace) -> dict[str, float]:
    gem = GEMModel.from_pretrained(args.model, dtype="float32")
    lm = apply_lora(gem.model, gem.special_ids, r=16, alpha=32, dropout=0.0)
    texts = wiki_texts("AA/wiki_00")
    chunks = tokenize_and_chunk(texts, gem.tokenizer, 256)["input_ids"][: 8 * args.steps]
    sents = tokenize_texts(texts.select(range(64 * args.steps)), gem.tokenizer, 48)["input_ids"]
    common = dict(special_ids=gem.special_ids, pad_id=gem.pad_id, mask_dtype=torch.bfloat16, seed=0)
    mixed = GEMCollator(gem_prob=0.2, format="reconstruction", **common)
    pairs = ContrastiveCollator(dropout=0.1, **common)
    ntp_batches = collate_batches(mixed, chunks, 8)
    con_batches = collate_batches(pairs, sents[: 32 * args.steps], 32)
    ntp, con = GEMTrainingModule(lm), GEMTrainingModule(lm, LogitScale(), alpha=0.9)
    opt = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=1e-5)
    gate: list[SpecialGate | None] = [None]

    def scoped(scope: str, module: GEMTrainingModule, batches: list[dict]) -> Callable[[], None]:
        def run() -> None:
            if scope == "special_only" and gate[0] is None:
                gate[0] = SpecialGate(lm, gem.special_ids)
            if scope == "all" and gate[0] is not None:
                gate[0].remove()
                gate[0] = None
            train_steps(module, batches, opt)

        return run

    return best_of(
        {f"train_mixed_ntp_{s}": scoped(s, ntp, ntp_batches) for s in ("all", "special_only")}
        | {f"train_contrastive_{s}": scoped(s, con, con_batches) for s in ("all", "special_only")},
        args.rounds,
    )


def inference(args: argparse.Namespace) -> dict[str, float]:
    base = GEMModel.from_pretrained(args.model, dtype=default_dtype())
    lm = apply_lora(copy.deepcopy(base.model), base.special_ids, r=16, alpha=32, dropout=0.0)
    for n, p in lm.named_parameters():  # a non-zero adapter, as after training
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=1e-3)
    gated_lm = copy.deepcopy(lm)
    SpecialGate(gated_lm, base.special_ids)
    merged = GEMModel(lm.merge_and_unload().eval(), base.tokenizer, base.config)
    gated = GEMModel(gated_lm.eval(), base.tokenizer, base.config)
    texts = wiki_texts("AA/wiki_01")
    ids = torch.tensor(tokenize_and_chunk(texts, base.tokenizer, 256)["input_ids"][:8])
    sentences = [row[0] for row in stsb_rows()][: args.sentences]  # column 1, repeats kept

    def prefill(gem: GEMModel) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                gem.model(input_ids=ids, use_cache=False)

        return run

    def encode(gem: GEMModel) -> Callable[[], None]:
        return lambda: gem.encode(sentences, batch_size=32)

    times = best_of(
        {
            "prefill_plain_all_merged": prefill(merged),
            "prefill_plain_special_only": prefill(gated),
            "encode_all_merged": encode(merged),
            "encode_special_only": encode(gated),
        },
        args.rounds,
    )
    times["_prefill_tokens"] = ids.numel()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=3, help="training steps per kind per round")
    ap.add_argument("--sentences", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS / "adapter_scope.json")
    args = ap.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    t = training(args) | inference(args)

    def ratio(a: str, b: str) -> float:
        return round(t[a] / t[b], 3)

    report = {
        "model": args.model,
        "torch_threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "seconds_best_round": {k: round(v, 3) for k, v in t.items() if not k.startswith("_")},
        "time_ratio_special_only_vs_all": {
            "train_mixed_ntp_step": ratio("train_mixed_ntp_special_only", "train_mixed_ntp_all"),
            "train_contrastive_step": ratio(
                "train_contrastive_special_only", "train_contrastive_all"
            ),
            "plain_text_prefill": ratio("prefill_plain_special_only", "prefill_plain_all_merged"),
            "encode": ratio("encode_special_only", "encode_all_merged"),
        },
    }
    print(json.dumps(write_result(args.out, report), indent=2))


if __name__ == "__main__":
    main()
