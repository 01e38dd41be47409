"""Training's before/after numbers: a shipped ``gemlm eval`` suite on the model in memory.

The same tasks, subsets and scorers as ``gemlm eval --suite quick`` (``evaluate_loaded``), run
on a bf16 copy of the model as users run it, with the corpus paragraphs this run held out as
the perplexity texts (never trained on). A gated adapter (``adapter_scope="special_only"``)
generates exactly as its base, so its "after" generation numbers are the "before" ones and are
not recomputed.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from ..loading import default_dtype
from ..model import GEMModel
from .config import GEMTrainingConfig


def quick_eval(
    gem: GEMModel,
    cfg: GEMTrainingConfig,
    heldout: list[str],
    *,
    generation: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    """{task: main score} of ``cfg.eval_suite`` (+ "seconds", + "sample": a chat reply)."""
    from ..evaluation.run import evaluate_loaded

    t = time.perf_counter()
    results = evaluate_loaded(
        gem,
        cfg.eval_suite,
        cfg.data_dir,
        cfg.quick_eval_limit,
        generation=generation,
        perplexity_texts=heldout,
        log=log,
    )
    out: dict[str, Any] = {name: round(r["main"], 3) for name, r in results.items()}
    out["seconds"] = round(time.perf_counter() - t, 1)
    if cfg.sample_prompt:
        out["sample"] = gem.chat(cfg.sample_prompt, max_new_tokens=40, temperature=0.0)  # greedy
    return out


def eval_copy(gem: GEMModel, saved: Path | None = None) -> GEMModel:
    """Evaluate as users run it: bf16 where the CPU has it (weights copied, training untouched).

    A gated adapter is evaluated by loading what was saved (base + adapter), as users load it.
    """
    if saved is not None and gem.config.adapter_scope.saved_as_adapter:
        return GEMModel.from_pretrained(saved, dtype=default_dtype())
    return GEMModel(copy.deepcopy(gem.model).to(default_dtype()), gem.tokenizer, gem.config)
