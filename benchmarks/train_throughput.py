"""Training-step time: the previous training forward ("current") vs today's GEMTrainingModule
("new"), for both stages and both adapter scopes, on the same batches, in one process.

One LoRA model (r=16 + the GEM rows, bf16 autocast, AdamW), the gate attached for
``special_only`` and removed for ``all``. Kinds are interleaved over rounds, best round kept.

* mixed NTP: 8 x 256-token Wikipedia chunks, 20% of rows with the GEM token (reconstruction).
  ``current`` = one forward over every row + logits everywhere; ``new`` = logits only where a
  label follows (all) / the frozen text without autograd and plain rows skipped (special_only).
  The same-batch ratio for special_only is large because most rows carry no gradient; the
  ``all GEM rows`` kinds (every row gets the token, what special_only recipes now train on)
  compare the cost per gradient-carrying row.
* contrastive: 32 sentence pairs (<= 48 tokens), PromptEOL template, alpha 0.9 (current) as in
  the v1 recipes. ``new`` = length-sorted micro-batches (all) / the text without autograd and
  only the GEM token with grad (special_only, where the NTP term is inert and skipped).

``bf16 base`` kinds run a second model, gated for good, whose frozen base Linear weights are
stored in bf16 as the special_only recipes do (``bf16_frozen_linears``: bit-identical results).

    python -m benchmarks.train_throughput [--steps 3] [--rounds 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from benchmarks._common import (
    RESULTS,
    best_of,
    collate_batches,
    train_steps,
    wiki_texts,
    write_result,
)
from gemlm.adapter import SpecialGate
from gemlm.embedding import readout
from gemlm.masking import special_states
from gemlm.model import GEMModel
from gemlm.training.collator import ContrastiveCollator, GEMCollator
from gemlm.training.data import tokenize_and_chunk, tokenize_texts
from gemlm.training.losses import LogitScale, info_nce, ntp_loss
from gemlm.training.module import GEMTrainingModule, bf16_frozen_linears
from gemlm.training.trainer import apply_lora

PROMPT, SUFFIX = 'This sentence : "', '" means in one word:"'


class CurrentModule(torch.nn.Module):
    """The "current" column: the training forward before the fast paths, kept here on purpose
    as the baseline the new path is timed against (it no longer exists in ``gemlm``).

    It is ``GEMTrainingModule.forward`` of commit 99de8ee (``gemlm/training/trainer.py``, the
    parent of dbb0d6a, which added the fast paths), logic unchanged: one forward over every
    row, the LM head on every position, alpha < 1 adds NTP on the anchors. Only its logged
    parts are dropped, and ``readout(..., normalize=False)`` stands for 99de8ee's
    ``special_readout`` (the same mean over the special positions; today's casts the states to
    float32 first, a (2B, k, D) cast that is nothing beside the forward). It runs
    on today's batches, LoRA model and optimizer, so the two columns differ only in the forward
    path; ``tests/benchmarks/test_train_throughput.py`` checks that both give the same loss.
    """

    def __init__(self, lm, logit_scale=None, alpha=1.0):
        super().__init__()
        self.lm, self.logit_scale, self.alpha = lm, logit_scale, alpha

    def forward(self, input_ids, attention_mask, position_ids, segments, labels):
        common = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
        if self.logit_scale is None:
            return {"loss": ntp_loss(self.lm(**common, use_cache=False).logits, labels)}
        hidden = self.lm.get_decoder()(**common, use_cache=False).last_hidden_state
        emb = readout(special_states(hidden, segments), normalize=False)
        B = emb.shape[0] // 2
        loss = self.alpha * info_nce(emb[:B], emb[B:], self.logit_scale())["loss"]
        if self.alpha < 1:
            logits = self.lm.get_output_embeddings()(hidden[:B])
            loss = loss + (1 - self.alpha) * ntp_loss(logits, labels[:B])
        return {"loss": loss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per kind per round")
    ap.add_argument("--rounds", type=int, default=2)
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
    torch.manual_seed(0)

    gem = GEMModel.from_pretrained(args.model, dtype="float32")
    tok = gem.tokenizer
    lm = apply_lora(gem.model, gem.special_ids, r=16, alpha=32, dropout=0.0)
    texts = wiki_texts("AA/wiki_00")
    n = args.steps
    chunks = tokenize_and_chunk(texts, tok, 256)["input_ids"][: 8 * n]
    sents = tokenize_texts(texts.select(range(32 * n)), tok, 48, prompt=PROMPT)["input_ids"]
    common = dict(special_ids=gem.special_ids, pad_id=gem.pad_id, mask_dtype=torch.bfloat16, seed=0)
    mixed = GEMCollator(gem_prob=0.2, format="reconstruction", **{**common, "seed": args.seed})
    every = GEMCollator(gem_prob=1.0, format="reconstruction", **common)
    suffix = tok(SUFFIX, add_special_tokens=False)["input_ids"]
    protect = len(tok(PROMPT)["input_ids"])
    pairs = ContrastiveCollator(dropout=0.1, protect=protect, suffix_ids=suffix, **common)

    ntp_b, every_b = collate_batches(mixed, chunks, 8), collate_batches(every, chunks, 8)
    con_b = collate_batches(pairs, sents, 32)
    scale = LogitScale()
    bf = torch.bfloat16
    # what the recipes run for special_only: a second copy, gated for good, its frozen base
    # Linear weights stored in bf16 (bit-identical under autocast, see bf16_frozen_linears)
    gem16 = GEMModel.from_pretrained(args.model, dtype="float32")
    lm16 = apply_lora(gem16.model, gem16.special_ids, r=16, alpha=32, dropout=0.0)
    SpecialGate(lm16, gem16.special_ids)
    bf16_frozen_linears(lm16)
    scale16 = LogitScale()

    def frozen(model, logit_scale=None):
        return lambda: GEMTrainingModule(
            model,
            logit_scale,
            frozen_text=True,
            micro_batch=args.micro_batch,
            mask_dtype=bf,
        )

    frozen_ntp, frozen_con = frozen(lm), frozen(lm, scale)
    # (stage, scope, variant) -> (module factory, batches); special_only modules need the gate
    kinds = {
        ("ntp", "all", "current"): (lambda: CurrentModule(lm), ntp_b),
        ("ntp", "all", "new"): (lambda: GEMTrainingModule(lm, mask_dtype=bf), ntp_b),
        ("ntp", "special_only", "current"): (lambda: CurrentModule(lm), ntp_b),
        ("ntp", "special_only", "new"): (frozen_ntp, ntp_b),
        ("ntp", "special_only", "current, all GEM rows"): (lambda: CurrentModule(lm), every_b),
        ("ntp", "special_only", "new, all GEM rows"): (frozen_ntp, every_b),
        ("ntp", "special_only", "new, all GEM rows, bf16 base"): (frozen(lm16), every_b),
        ("contrastive", "all", "current"): (lambda: CurrentModule(lm, scale, 0.9), con_b),
        ("contrastive", "all", "new"): (
            lambda: GEMTrainingModule(lm, scale, 0.9, micro_batch=args.micro_batch, mask_dtype=bf),
            con_b,
        ),
        ("contrastive", "special_only", "current"): (lambda: CurrentModule(lm, scale, 0.9), con_b),
        ("contrastive", "special_only", "new"): (frozen_con, con_b),
        ("contrastive", "special_only", "new, bf16 base"): (frozen(lm16, scale16), con_b),
    }
    trainable = [*lm.parameters(), *scale.parameters(), *lm16.parameters(), *scale16.parameters()]
    opt = torch.optim.AdamW([p for p in trainable if p.requires_grad], lr=1e-5)
    gate: list[SpecialGate | None] = [None]
    modules: dict = {}

    def run(kind: tuple[str, str, str]) -> float:
        """Seconds per step of one kind (setting the gate and building the module not timed)."""
        if "bf16 base" in kind[2]:
            pass  # lm16 is gated for good; the shared lm's gate state does not matter
        elif kind[1] == "special_only" and gate[0] is None:
            gate[0] = SpecialGate(lm, gem.special_ids)
        if kind[1] == "all" and gate[0] is not None:
            gate[0].remove()
            gate[0] = None
        factory, batches = kinds[kind]
        module = modules.setdefault(kind, factory())
        t = time.perf_counter()
        train_steps(module, batches, opt)
        return (time.perf_counter() - t) / len(batches)

    # the warm-up also builds each module under the right gate state
    best = best_of(
        {kind: partial(run, kind) for kind in kinds},
        args.rounds,
        self_timed=True,
        show=lambda kind, dt: f"{' / '.join(kind):42s} {dt:6.2f} s/step",
    )

    def ratio(stage: str, scope: str, variant: str = "new") -> float:
        return round(best[(stage, scope, "current")] / best[(stage, scope, variant)], 2)

    gem_rows = sum(int((b["segments"] == 2).any(1).sum()) for b in ntp_b)
    report = {
        "model": args.model,
        "setup": "LoRA r=16 + GEM rows, bf16 autocast, AdamW, CPU; best of rounds, interleaved",
        "torch_threads": torch.get_num_threads(),
        "steps_per_round": n,
        "rounds": args.rounds,
        "ntp_batch": f"8 x 256 tokens, {gem_rows}/{8 * n} rows with the GEM token",
        "contrastive_batch": "32 pairs of <= 48-token sentences + PromptEOL template",
        "contrastive_micro_batch": args.micro_batch,
        "seconds_per_step": {" / ".join(k): round(v, 3) for k, v in best.items()},
        "speedup_current_over_new": {
            "ntp / all": ratio("ntp", "all"),
            "ntp / special_only": ratio("ntp", "special_only"),
            "ntp / special_only, all-GEM batches": round(
                best[("ntp", "special_only", "current, all GEM rows")]
                / best[("ntp", "special_only", "new, all GEM rows")],
                2,
            ),
            "ntp / special_only, all-GEM batches, bf16 base": round(
                best[("ntp", "special_only", "current, all GEM rows")]
                / best[("ntp", "special_only", "new, all GEM rows, bf16 base")],
                2,
            ),
            "contrastive / all": ratio("contrastive", "all"),
            "contrastive / special_only": ratio("contrastive", "special_only"),
            "contrastive / special_only, bf16 base": ratio(
                "contrastive", "special_only", "new, bf16 base"
            ),
        },
    }
    print(json.dumps(write_result(args.out, report), indent=2))


if __name__ == "__main__":
    main()
