"""``gemlm eval``: read every task first (bad specs fail before any model loads), then per causal
LM load it once, run its encoders through mteb and its generation metrics once, and report."""

from __future__ import annotations

import dataclasses
import gc
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mteb
import torch

from ..loading import dtype_name
from ..paths import data_dir
from .display import shown_command, shown_data_dir, shown_path
from .encoders import (
    ENCODER_ONLY,
    ModelSpec,
    TextEncoder,
    load_backend,
    mteb_encoder,
    parse_model_spec,
)
from .generation_suite import GenerationData, prepare_generation, run_generation
from .loglik import LoglikScorer
from .readers import TaskData, read_task
from .report import write_report
from .suite import Suite, load_suite
from .tasks import build_task

if TYPE_CHECKING:
    from ..model import GEMModel


def evaluate(
    models: list[str],
    suite: str | Path = "dev",
    out: str | Path = "eval-results",
    data: str | Path | None = None,
    limit: int | None = None,
    dtype: str = "auto",
    command: str | None = None,
    log: Any = print,
    generation: bool = True,
) -> dict[str, Any]:
    """Run ``suite`` for every model spec; write results.json, a Markdown table and a PNG.

    ``generation=False`` runs only the embedding tasks (e.g. to compare adapters of one base
    with ``adapter_scope: special_only``, whose generation is the base model's by construction).
    """
    started = time.perf_counter()
    # a label defaults to the spec as typed: shown without this machine's absolute paths
    specs = [_shown_label(parse_model_spec(m)) for m in models]
    if not specs:
        raise ValueError("give at least one --model")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"model labels repeat: {labels} (use label=kind:target)")
    folder = data_dir(data)
    the_suite, tasks, gen = _read(suite, folder, limit, generation)  # all checks, no model yet
    log(
        f"data read in {time.perf_counter() - started:.1f}s: {[t.spec.name for t in tasks]}"
        f" + {list(gen.mc) + (['Wiki ppl'] if gen.ppl_texts else [])}"
    )

    dtype_name(dtype)  # an unknown dtype fails before any model loads
    results: dict[str, dict[str, Any]] = {s.label: {} for s in specs}
    teachers: dict[str, str | None] = {}  # label -> distilled_from of a gem model
    groups: dict[str, list[ModelSpec]] = {}
    for s in specs:
        groups.setdefault(s.lm_key or f"st:{s.target}:{s.label}", []).append(s)
    for key, members in groups.items():
        shared: dict[str, Any] = {}
        backends = {}
        for s in members:
            t = time.perf_counter()
            backends[s.label] = load_backend(s, dtype, shared)
            if s.kind == "gem":
                teachers[s.label] = backends[s.label].config.distilled_from
            memo = shared.setdefault(f"memo:{s.target}", {}) if s.kind == "gem" else None
            log(f"[{s.label}] loaded in {time.perf_counter() - t:.1f}s")
            results[s.label].update(
                _run_embedding(TextEncoder(s, backends[s.label], memo), tasks, limit, log)
            )
        lm = next((m for m in members if m.kind != "gem"), members[0])  # the base itself
        if lm.kind not in ENCODER_ONLY and (gen.mc or gen.ppl_texts):
            log(f"[{key}] generation metrics (shared by {[m.label for m in members]})")
            gen_results = run_generation(_scorer(lm, backends[lm.label]), gen, log)
            for m in members:
                shared_note = {} if m is lm else {"shared_with": lm.label}
                results[m.label].update({k: {**v, **shared_note} for k, v in gen_results.items()})
        del backends, shared
        gc.collect()

    meta = {
        "suite": the_suite.name,
        "suite_file": shown_path(the_suite.source_file),
        "command": shown_command(command or "gemlm " + " ".join(sys.argv[1:])),
        "data_dir": shown_data_dir(data, folder),
        "limit": limit,
        "dtype": dtype_name(dtype),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "seconds_total": round(time.perf_counter() - started, 1),
        "models": [
            {
                "label": s.label,
                "kind": s.kind,
                "target": shown_path(s.target),
                "dims": s.dims,
                "distilled_from": teachers.get(s.label),
            }
            for s in specs
        ],
        "subsets": _subsets(tasks, gen, results),
    }
    payload = {"meta": meta, "results": results}
    paths = write_report(payload, out)
    log(f"wrote {', '.join(str(p) for p in paths)} in {meta['seconds_total']:.0f}s")
    return payload


def evaluate_loaded(
    gem: GEMModel,
    suite: str | Path = "quick",
    data: str | Path | None = None,
    limit: int | None = None,
    *,
    generation: bool = True,
    perplexity_texts: list[str] | None = None,
    log: Any = print,
) -> dict[str, dict[str, Any]]:
    """``suite`` on a GEMModel already in memory (training's before/after): {task: result}.

    The same tasks, subsets and scorers as ``gemlm eval``; ``perplexity_texts`` replaces the
    suite's perplexity paragraphs (training passes the ones it held out), capped at the
    suite's ``n``. Nothing is written.
    """
    the_suite, tasks, gen = _read(suite, data_dir(data), limit, generation)
    if perplexity_texts is not None and gen.ppl_texts:
        gen.ppl_texts = list(perplexity_texts)[: len(gen.ppl_texts)]
    spec = ModelSpec(kind="gem", target="<in memory>", label="model")
    results = _run_embedding(TextEncoder(spec, gem), tasks, limit, log)
    if gen.mc or gen.ppl_texts:
        results.update(run_generation(_scorer(spec, gem), gen, log))
    return results


def _read(
    suite: str | Path, folder: Path, limit: int | None, generation: bool
) -> tuple[Suite, list[TaskData], GenerationData]:
    """The suite, its tasks' rows and its generation data: every check before a model loads."""
    the_suite = load_suite(suite)
    tasks = [read_task(spec, folder, limit) for spec in the_suite.tasks]
    gen = prepare_generation(
        the_suite.generation if generation else {}, folder, limit, the_suite.source_file
    )
    return the_suite, tasks, gen


def _run_embedding(
    encoder: TextEncoder, tasks: list[TaskData], limit: int | None, log: Any
) -> dict[str, Any]:
    out = {}
    adapter = mteb_encoder(encoder)
    for data in tasks:
        t = time.perf_counter()
        task = build_task(data, quick=limit is not None)
        before = adapter.texts_embedded
        res = mteb.evaluate(adapter, tasks=[task], cache=None, show_progress_bar=False)
        scores = res.task_results[0].scores[data.spec.eval_split][0]
        main = scores["main_score"] * 100
        flat = {k: v for k, v in scores.items() if isinstance(v, int | float)}
        out[data.spec.name] = {
            "main": main,
            "metric": data.spec.main_score,
            "scores": flat,
            "seconds": time.perf_counter() - t,
            "texts": adapter.texts_embedded - before,
        }
        log(
            f"  {data.spec.name} {data.spec.main_score}={main:.2f}"
            f" ({out[data.spec.name]['seconds']:.0f}s)"
        )
    return out


def _shown_label(spec: ModelSpec) -> ModelSpec:
    return dataclasses.replace(spec, label=shown_command(spec.label))


def _scorer(spec: ModelSpec, backend: Any) -> LoglikScorer:
    if spec.kind == "gem":
        return LoglikScorer(backend.model, backend.tokenizer, exclude_ids=backend.special_ids)
    return LoglikScorer(backend.model, backend.tokenizer)


def _subsets(
    tasks: list[TaskData], gen: GenerationData, results: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """Per task: the rows read, sampled and skipped per split, and the texts mteb embedded."""
    out = {}
    for t in tasks:
        name = t.spec.name
        embedded = next(
            (r[name]["texts"] for r in results.values() if "texts" in r.get(name, {})), None
        )
        note = f"; {embedded:,} texts embedded" if embedded is not None else ""
        out[name] = f"{t.summary()}{note} ({Path(t.spec.source_file).name})"
    return {**out, **gen.subsets}
