"""Cross-check gemlm's log-likelihood scorer against lm-evaluation-harness on a small subset.

Not part of the package and not a test: a one-off verification with the real default model.
Needs ``pip install lm-eval`` (checked with 0.4.13; not a gemlm dependency). No task registry and
no network: the requests are built with gemlm's own prompt builders from the local data
(``gemlm.paths.data_dir()``) and handed to lm-eval's ``HFLM.loglikelihood`` as
``Instance(request_type="loglikelihood", ...)`` objects, on the same already-loaded fp32 model.

Subsets (the dev suite's draws, cut with ``limit`` as ``gemlm eval --limit`` does): ``--n`` MMLU
test questions (per_subject 10, seed 0, round-robin over subjects) scored 5-shot with letters and
0-shot cloze, and ``--n`` ARC-Challenge test questions (n 500, seed 0) as cloze; every choice.

Reported: max / mean absolute difference of the log-likelihoods; whether the per-question argmax
(the acc and acc_norm decisions of ``score_mc``) agree; acc / acc_norm under both. gemlm's scorer
runs twice: plain (like for like with lm-eval) and with the GEM token ids excluded, as
``gemlm eval`` runs it for a GEM model. ``--reference`` adds a hand-computed reference (one
unpadded forward per request, full logits, ``torch.log_softmax``).

    nice -n 19 .venv/bin/python -m benchmarks.check_loglik [--reference]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import RESULTS, write_result
from gemlm.evaluation.generation import (
    MCItem,
    arc_items,
    mmlu_cloze_items,
    mmlu_letter_items,
    read_mmlu,
    sample_mmlu,
)
from gemlm.evaluation.loglik import LoglikScorer
from gemlm.model import GEMModel
from gemlm.paths import data_dir


def build_items(data: Path, n: int) -> dict[str, list[MCItem]]:
    """The three protocols' items, exactly as ``prepare_generation`` builds them for the dev
    suite with ``limit=n``."""
    test = sample_mmlu(read_mmlu(data / "mmlu", "test"), 10, 0, n)
    dev = read_mmlu(data / "mmlu", "dev")
    arc = arc_items(data / "arc/ARC-Challenge/test.jsonl", 500, 0, n)
    return {
        "MMLU 5-shot": mmlu_letter_items(test, dev, 5),
        "MMLU cloze": mmlu_cloze_items(test),
        "ARC-Challenge": arc,
    }


def lm_eval_model(model: torch.nn.Module, tokenizer: Any, batch_size: int) -> Any:
    """lm-eval's HFLM around the already-loaded ``model``."""
    from lm_eval.models.huggingface import HFLM

    # a copy: HFLM may set a pad token on the tokenizer it is given
    return HFLM(pretrained=model, tokenizer=copy.deepcopy(tokenizer), batch_size=batch_size)


def lm_eval_scores(lm: Any, requests: list[tuple[str, str]]) -> tuple[list[float], list[bool]]:
    """(log-likelihoods, is_greedy) from lm-eval's ``HFLM.loglikelihood``."""
    from lm_eval.api.instance import Instance

    instances = [
        Instance(request_type="loglikelihood", doc={}, arguments=(ctx, cont), idx=i)
        for i, (ctx, cont) in enumerate(requests)
    ]
    out = lm.loglikelihood(instances, disable_tqdm=True)
    return [float(v) for v, _ in out], [bool(g) for _, g in out]


@torch.inference_mode()
def reference_scores(scorer: LoglikScorer, requests: list[tuple[str, str]]) -> list[float]:
    """One unpadded forward per request, full logits, no batching (tokenised the lm-eval way)."""
    out = []
    for ctx, cont in requests:
        c, k = scorer.encode_pair(ctx, cont)
        ids = torch.tensor([c + k])
        lp = torch.log_softmax(scorer.model(input_ids=ids).logits[0].float(), -1)
        out.append(sum(lp[p - 1, ids[0, p]].item() for p in range(len(c), len(c) + len(k))))
    return out


def decisions(items: list[MCItem], lls: list[float]) -> tuple[list[int], list[int]]:
    """Per question: argmax of summed log-prob and of log-prob per character (as ``score_mc``)."""
    best, best_norm, k = [], [], 0
    for it in items:
        ll = lls[k : k + len(it.choices)]
        k += len(it.choices)
        norm = [v / max(len(c), 1) for v, c in zip(ll, it.choices, strict=True)]
        best.append(max(range(len(ll)), key=ll.__getitem__))
        best_norm.append(max(range(len(norm)), key=norm.__getitem__))
    return best, best_norm


def accuracy(items: list[MCItem], picks: list[int]) -> float:
    return 100 * sum(p == it.gold for p, it in zip(picks, items, strict=True)) / len(items)


def compare(items: list[MCItem], ours: list[float], ref: list[float]) -> dict[str, Any]:
    diff = [abs(a - b) for a, b in zip(ours, ref, strict=True)]
    (a, an), (b, bn) = decisions(items, ours), decisions(items, ref)
    worst = max(range(len(diff)), key=diff.__getitem__)
    return {
        "requests": len(diff),
        "max_abs_diff": max(diff),
        "mean_abs_diff": sum(diff) / len(diff),
        "max_rel_diff": max(d / max(abs(r), 1e-9) for d, r in zip(diff, ref, strict=True)),
        "worst_request": worst,
        "argmax_agree": sum(x == y for x, y in zip(a, b, strict=True)),
        "argmax_norm_agree": sum(x == y for x, y in zip(an, bn, strict=True)),
        "questions": len(items),
        "acc": [accuracy(items, a), accuracy(items, b)],
        "acc_norm": [accuracy(items, an), accuracy(items, bn)],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--n", type=int, default=10, help="questions per protocol")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--batch-size", type=int, default=8, help="lm-eval HFLM batch size")
    p.add_argument("--reference", action="store_true", help="also a hand-computed reference")
    p.add_argument("--out", default=str(RESULTS / "check_loglik.json"))
    args = p.parse_args()

    items = build_items(data_dir(args.data_dir), args.n)
    gem = GEMModel.from_pretrained(args.model, dtype="float32")
    plain = LoglikScorer(gem.model, gem.tokenizer)
    masked = LoglikScorer(gem.model, gem.tokenizer, exclude_ids=gem.special_ids)
    lm = lm_eval_model(gem.model, gem.tokenizer, args.batch_size)
    import lm_eval

    result: dict[str, Any] = {
        "model": args.model,
        "dtype": "float32",
        "torch": torch.__version__,
        "lm_eval": lm_eval.__version__,
        "lm_eval_max_length": lm.max_length,
        "gemlm_max_length": plain.max_length,
        "gem_special_ids": gem.special_ids,
        "n_per_protocol": args.n,
        "lm_eval_batch_size": args.batch_size,
        "protocols": {},
    }
    for name, its in items.items():
        requests = [(it.context, c) for it in its for c in it.choices]
        lengths = [len(sum(plain.encode_pair(*r), [])) for r in requests]
        t = time.perf_counter()
        ours = plain.loglikelihood(requests)
        t_ours = time.perf_counter() - t
        ours_masked = masked.loglikelihood(requests)
        t = time.perf_counter()
        ref, greedy = lm_eval_scores(lm, requests)
        t_ref = time.perf_counter() - t
        entry: dict[str, Any] = {
            "tokens_per_request": [min(lengths), max(lengths)],
            "seconds": {"gemlm": t_ours, "lm_eval": t_ref},
            "gemlm_vs_lm_eval": compare(its, ours, ref),
            "gemlm_gem_masked_vs_lm_eval": compare(its, ours_masked, ref),
            "lm_eval_is_greedy_true": sum(greedy),
            "gold": [it.gold for it in its],
            "loglik": {"gemlm": ours, "gemlm_gem_masked": ours_masked, "lm_eval": ref},
        }
        if args.reference:
            hand = reference_scores(plain, requests)
            entry["gemlm_vs_hand"] = compare(its, ours, hand)
            entry["lm_eval_vs_hand"] = compare(its, ref, hand)
            entry["loglik"]["hand"] = hand
        result["protocols"][name] = entry
        c = entry["gemlm_vs_lm_eval"]
        m = entry["gemlm_gem_masked_vs_lm_eval"]
        print(
            f"{name}: {c['requests']} requests, |d| max {c['max_abs_diff']:.2e} "
            f"mean {c['mean_abs_diff']:.2e} (GEM-masked: max {m['max_abs_diff']:.2e}); "
            f"argmax agree {c['argmax_agree']}/{c['questions']}, "
            f"norm {c['argmax_norm_agree']}/{c['questions']}; "
            f"acc {c['acc'][0]:.0f} vs {c['acc'][1]:.0f}, "
            f"acc_norm {c['acc_norm'][0]:.0f} vs {c['acc_norm'][1]:.0f} (gemlm vs lm-eval); "
            f"{t_ours:.0f}s vs {t_ref:.0f}s"
        )
    write_result(args.out, result, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
