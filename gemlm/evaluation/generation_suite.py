"""The generation half of a suite: read every item before a model loads, then score one LM."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .generation import (
    MCItem,
    arc_items,
    heldout_wikipedia,
    mmlu_cloze_items,
    mmlu_letter_items,
    read_mmlu,
    sample_mmlu,
    score_mc,
)
from .loglik import LoglikScorer
from .specs import SpecError

ARC_NAMES = {"arc_easy": "ARC-Easy", "arc_challenge": "ARC-Challenge"}


@dataclass
class GenerationData:
    """Prepared items per metric name, plus how each subset was drawn (for the report)."""

    ppl_texts: list[str] = field(default_factory=list)
    ppl_max_tokens: int = 256
    mc: dict[str, tuple[list[MCItem], str, bool]] = field(
        default_factory=dict
    )  # name -> items, main, macro
    subsets: dict[str, str] = field(default_factory=dict)


def prepare_generation(
    cfg: dict[str, dict[str, Any]], data: Path, limit: int | None, where: str
) -> GenerationData:
    out = GenerationData()
    if "perplexity" in cfg:
        c = cfg["perplexity"]
        source = c.get("source", "wikipedia_en_wikiextractor")
        if not (data / source).exists():
            raise SpecError(where, "generation.perplexity.source", f"not found: {data / source}")
        texts = heldout_wikipedia(data, source, int(c.get("eval_rows", 200)), int(c.get("seed", 0)))
        n = min(x for x in (c.get("n"), limit, len(texts)) if x)
        out.ppl_texts, out.ppl_max_tokens = texts[:n], int(c.get("max_tokens", 256))
        out.subsets["Wiki ppl"] = (
            f"{n} held-out paragraphs of {source} (train_eval_split eval_rows="
            f"{c.get('eval_rows', 200)}, seed {c.get('seed', 0)}), "
            f"<= {out.ppl_max_tokens} tokens each"
        )
    if "mmlu" in cfg:
        c = cfg["mmlu"]
        folder = data / c.get("folder", "mmlu")
        if not (folder / "test").is_dir():
            raise SpecError(where, "generation.mmlu.folder", f"not found: {folder / 'test'}")
        test = sample_mmlu(
            read_mmlu(folder, "test"), c.get("per_subject"), int(c.get("seed", 0)), limit
        )
        dev = read_mmlu(folder, "dev")
        shots = int(c.get("shots", 5))
        n = sum(len(v) for v in test.values())
        protocols = c.get("protocols", ["letters", "cloze"])
        if "letters" in protocols:
            out.mc["MMLU 5-shot"] = (mmlu_letter_items(test, dev, shots), "acc_macro", True)
        if "cloze" in protocols:
            out.mc["MMLU cloze"] = (mmlu_cloze_items(test), "acc_norm_macro", True)
        out.subsets["MMLU"] = (
            f"{n} test questions from {len(test)} subjects "
            f"({c.get('per_subject') or 'all'} seeded per "
            f"subject, seed {c.get('seed', 0)}); letters {shots}-shot from dev, cloze 0-shot"
        )
    for key, c in cfg.items():
        if not key.startswith("arc"):
            continue
        name = c.get("name") or ARC_NAMES.get(key, key)
        path = data / c.get("file", "")
        if not path.is_file():
            raise SpecError(where, f"generation.{key}.file", f"not found: {path}")
        items = arc_items(path, c.get("n"), int(c.get("seed", 0)), limit)
        out.mc[name] = (items, "acc_norm", False)
        out.subsets[name] = (
            f"{len(items)} seeded questions of {c.get('file')} "
            f"(seed {c.get('seed', 0)}), 0-shot cloze"
        )
    return out


def run_generation(
    scorer: LoglikScorer, gen: GenerationData, log: Any = print
) -> dict[str, dict[str, Any]]:
    """{metric name: {main, metric, scores, seconds}} for one causal LM."""
    results: dict[str, dict[str, Any]] = {}
    if gen.ppl_texts:
        t = time.perf_counter()
        nll, count = scorer.token_nll(gen.ppl_texts, gen.ppl_max_tokens)
        ppl = math.exp(nll / max(count, 1))
        results["Wiki ppl"] = {
            "main": ppl,
            "metric": "perplexity",
            "scores": {"perplexity": ppl, "tokens": count},
            "seconds": time.perf_counter() - t,
        }
        log(f"  Wiki ppl {ppl:.3f} ({count} tokens, {results['Wiki ppl']['seconds']:.0f}s)")
    for name, (items, main, macro) in gen.mc.items():
        t = time.perf_counter()
        scores = score_mc(scorer, items, macro=macro)
        results[name] = {
            "main": scores[main],
            "metric": main,
            "scores": scores,
            "seconds": time.perf_counter() - t,
        }
        log(f"  {name} {main}={scores[main]:.2f} (n={len(items)}, {results[name]['seconds']:.0f}s)")
    return results
