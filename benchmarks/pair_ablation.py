"""Which self-supervised positive pairs teach retrieval? One arm per pair source + a mix.

Every arm is the same recipe (default ``recipes/smollm2-135m-cpu-v2.yaml``, special_only)
with only ``pair_mix`` (and the passage length) changed, so the step budget is identical;
each model is then scored on the embedding tasks of the ``report`` suite (its generation is
the base model's by construction). Resumable: an arm whose model exists is not retrained, one
whose report exists is not re-scored; a killed run continues from its checkpoints.

    python -m benchmarks.pair_ablation [--arms dropout ict title crop mix] [--mix ict=1,crop=1]
        [--stage1-from runs/smollm2-135m-cpu-v2] [--variant NAME key=value ...]
        [--as-shipped] [--curve-point NAME POINT] [--out FILE.json]

A ``--variant`` is a further arm: the base recipe with the given overrides (e.g. another
``pair_mix`` or learning rate); it is listed after the pair-source arms.

Writes ``runs/ablation/<arm>/`` and ``benchmarks/results/pair_ablation.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from benchmarks._common import (
    REPORT_TASKS as TASKS,
)
from benchmarks._common import (
    RESULTS,
    command_line,
    machine,
    md_table,
    stage_runtime,
    write_result,
)
from benchmarks.scaling_curve import bf16_model
from gemlm.evaluation.run import evaluate
from gemlm.training.config import GEMTrainingConfig
from gemlm.training.run import train


def parse_mix(text: str) -> dict[str, float]:
    """``"ict=1,crop=0.5"`` -> ``{"ict": 1.0, "crop": 0.5}``.

    >>> parse_mix("ict=1, crop=0.5")
    {'ict': 1.0, 'crop': 0.5}
    """
    pairs = (item.split("=") for item in text.split(",") if item.strip())
    return {name.strip(): float(weight) for name, weight in pairs}


def arm_overrides(
    arm: str,
    mix: dict[str, float],
    out: Path,
    passage_len: int,
    variants: dict[str, list[str]] | None = None,
) -> list[str]:
    """``key=value`` overrides of the base recipe for one arm.

    >>> arm_overrides("ict", {}, Path("r/ict"), 64)
    ['output_dir=r/ict', 'quick_eval=false', 'pair_mix={"ict": 1.0}', 'positive_max_len=64']
    >>> arm_overrides("v", {}, Path("r/v"), 64, {"v": ["pair_mix={title: 1}", "ict_keep=0"]})[2:]
    ['positive_max_len=64', 'pair_mix={title: 1}', 'ict_keep=0']
    """
    variants = variants or {}
    pair_mix = mix if arm in ("mix", *variants) else {arm: 1.0}
    over = [f"output_dir={out}", "quick_eval=false", f"pair_mix={json.dumps(pair_mix)}"]
    if set(pair_mix) != {"dropout"}:
        over.append(f"positive_max_len={passage_len}")
    extra = variants.get(arm, [])
    keys = {item.split("=", 1)[0] for item in extra}
    return [o for o in over if o.split("=", 1)[0] not in keys] + extra  # a variant's keys win


def curve_row(point: str, curve: Path = RESULTS / "scaling_curve.json") -> dict:
    """A scaling-curve point as an arm's row: its scores and train time, the point named."""
    row = json.loads(curve.read_text())["points"][point]
    return {
        "overrides": [f"scaling curve point {point}: {row['model']}"],
        "train_seconds": round(row["train_minutes"] * 60, 1),
        **{task: row[task] for task in TASKS if task in row},
    }


def kept_rows(out: Path) -> dict[str, dict]:
    """The arms of an earlier result file, each stamped with the command and training dtype
    that measured it (the file's own, for rows written before rows carried them)."""
    if not out.exists():
        return {}
    data = json.loads(out.read_text())
    dtype = data.get("machine", {}).get("auto_dtype", "")
    stamp = {"command": data.get("command", ""), "dtype": dtype}
    return {arm: {**stamp, **row} for arm, row in data["arms"].items()}


def stage_seconds(run: Path) -> float:
    """Training time of a run's stages (the Trainer's ``train_runtime``, no evaluation)."""
    return round(sum(stage_runtime(log)[0] for log in run.glob("stage*/log_history.json")), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="recipes/smollm2-135m-cpu-v2.yaml")
    ap.add_argument("--arms", nargs="*", default=["dropout", "ict", "title", "crop", "mix"])
    ap.add_argument("--mix", default="ict=1,crop=1,title=0.5,dropout=0.5")
    ap.add_argument("--passage-len", type=int, default=128, help="tokens per positive passage")
    ap.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    ap.add_argument(
        "--stage1-from",
        type=Path,
        default=None,
        help="a finished run of the same recipe: every arm reuses its mixed-NTP stage (which does "
        "not depend on pair_mix), and the dropout arm is that run's model (same settings)",
    )
    ap.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar=("NAME", "KEY=VALUE"),
        help="a further arm: the --mix recipe with these overrides (repeatable)",
    )
    ap.add_argument(
        "--as-shipped",
        action="store_true",
        help="score each arm with its adapter cast to bf16, as tools/ship_model.py ships it "
        "(the scaling curve's scoring)",
    )
    ap.add_argument(
        "--curve-point",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "POINT"),
        help="a row taken from benchmarks/results/scaling_curve.json (e.g. random x1: the same "
        "recipe and budget with random batches), not retrained (repeatable)",
    )
    ap.add_argument(
        "--keep-rows",
        action="store_true",
        help="keep the arms already in --out that this command does not run, each with the "
        "command and training dtype that measured it (a table grown over several runs)",
    )
    ap.add_argument("--title", default="", help="the markdown table's title")
    ap.add_argument("--out", type=Path, default=RESULTS / "pair_ablation.json")
    args = ap.parse_args()
    mix = parse_mix(args.mix)
    variants = {name: list(over) for name, *over in args.variant}
    command = command_line()

    rows: dict[str, dict] = kept_rows(args.out) if args.keep_rows else {}
    rows.update({name: curve_row(point) for name, point in args.curve_point})
    dtype = machine(with_torch=True)["auto_dtype"]
    for arm in [*args.arms, *variants]:
        folder = args.runs / arm
        over = arm_overrides(arm, mix, folder, args.passage_len, variants)
        done = args.stage1_from and (args.stage1_from / "model" / "gemlm_config.json").exists()
        if arm == "dropout" and done and not folder.exists():  # the recipe itself: reuse it
            for part in ("model", "stage1-ntp", "stage2-contrastive"):
                shutil.copytree(args.stage1_from / part, folder / part)
        if not (folder / "model" / "gemlm_config.json").exists():
            stage1 = folder / "stage1-ntp"
            if args.stage1_from and not stage1.exists():
                shutil.copytree(args.stage1_from / "stage1-ntp", stage1)
            train(GEMTrainingConfig.from_yaml(args.config, over), resume=True)
        report = folder / "report.json"  # written with report.md beside it
        if not report.exists():
            model = folder / "model"
            model = f"{arm}=gem:{bf16_model(model) if args.as_shipped else model}"
            evaluate(
                [model], "report", report.with_suffix(".md"), generation=False, command=command
            )
        scores = json.loads(report.read_text())["results"][arm]
        rows[arm] = {
            "overrides": over,
            "command": command,
            "dtype": dtype,
            "train_seconds": stage_seconds(folder),
            **{task: round(scores[task]["main"], 2) for task in TASKS if task in scores},
        }
        print(arm, rows[arm], flush=True)
        write_table(args.out, args.config, rows, command, args.title)  # a partial run keeps rows


def write_table(
    out: Path, config: str, rows: dict[str, dict], command: str = "", title: str = ""
) -> None:
    table = []
    for arm, row in rows.items():
        teacher = next((o.split("=", 1)[1] for o in row["overrides"] if "distill_teacher" in o), "")
        if teacher:  # supervision from another encoder: never read as GEM's own result
            arm = f"{arm} (distilled from {teacher}: not self-supervised)"
        vals = [row.get(t) for t in TASKS]
        mean = sum(v for v in vals if v is not None) / max(1, sum(v is not None for v in vals))
        cells = ["" if v is None else f"{v:.1f}" for v in vals]
        minutes = f"{row['train_seconds'] / 60:.1f}"
        table.append([arm, *cells, f"{mean:.1f}", minutes, row.get("dtype", "")])
    others = {a: r["command"] for a, r in rows.items() if r.get("command", command) != command}
    lines = [
        f"# {title or 'Pair-source ablation'} ({config}, report suite embedding tasks)",
        "",
        f"`{command}`",
        *(f"\n{arm}: `{cmd}`" for arm, cmd in others.items()),
        "",
        *md_table(["arm", *TASKS, "mean", "stage min", "train dtype"], table),
    ]
    data = {"config": config, "command": command, "arms": rows}
    write_result(out, data, markdown="\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
