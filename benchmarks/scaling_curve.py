"""What does more self-supervised training buy? Recipe v3's mix at 1x / 3x / 10x its pairs.

One long ``special_only`` run (default ``recipes/smollm2-135m-cpu-scale.yaml``: v3's mix and
rates, 1,300 contrastive steps of 64 pairs = 10x v3) on a warmup-stable-decay schedule whose flat
part is checkpointed at the decay start of every point. A shorter point P resumes from the long
run's checkpoint at ``P - decay_ratio * P`` (weights, optimizer and scheduler state) with its own
decay to 0, drawing from the long run's pair pool (``pair_pool_steps``): every point is the honest
end of a run of P steps, and the shorter ones cost only their decay. Each point is scored on the
``report`` suite's embedding tasks (generation is the base model's by construction), with its
adapter cast to bf16 as ``tools/ship_model.py`` ships it.

Wall time per point = the mixed-NTP stage + the long run's contrastive time per step x the decay
start + the point's own decay (the Trainer's ``train_runtime`` of each piece; no evaluation). A
long run resumed from a checkpoint is timed at its checkpoint-to-checkpoint pace
(:func:`whole_run_seconds`).

Resumable: the long run continues from its checkpoints, a point whose model exists is not
retrained, one whose report exists is not re-scored. ``--branches-only`` scores the shorter
points from the checkpoints the long run has already saved, without running it on (a long run
stopped for the CPU, to be continued later); a point's wall time then takes the long run's
per-step time from its checkpoints' write times. Each run adds its points to the JSON's (same
label: replaced).

    python -m benchmarks.scaling_curve [--config recipes/smollm2-135m-cpu-scale.yaml]
        [--points 130 390 1300] [--branches-only] [--out benchmarks/results/scaling_curve.json]
        [--render]  # only redraw the table, trend lines and plot of --out

The shipped default's batches (``recipes/smollm2-135m-cpu-scale256.yaml``: 256 pairs a step at
lr 3e-3, 330 steps = 10x) take ``--points 33 100 330 --out
benchmarks/results/scaling_curve_256.json``. Points are labelled by pairs over v3's 8,320.

Writes ``<output_dir>/point-<P>/`` and ``benchmarks/results/scaling_curve.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np

from gemlm.adapter import ADAPTER_DIR
from gemlm.evaluation.run import evaluate
from gemlm.sources import is_gemlm_folder
from gemlm.training.config import GEMTrainingConfig
from gemlm.training.run import train
from tools.ship_model import bf16_copy

from ._common import REPORT_TASKS as TASKS
from ._common import command_line, md_table, stage_runtime, write_result

CONTRASTIVE = "stage2-contrastive"
NTP = "stage1-ntp"
V3_PAIRS = 130 * 64  # recipe v3: 130 steps of 64 pairs = the x1 point


def decay_start(steps: int, decay_ratio: float) -> int:
    """The step where a run of ``steps`` starts to decay (as ``training.args.scheduler_kwargs``).

    >>> decay_start(130, 0.1), decay_start(390, 0.1), decay_start(1300, 0.1)
    (117, 351, 1170)
    """
    return steps - max(1, round(decay_ratio * steps))


def branch(main: Path, folder: Path, start: int) -> None:
    """A point's folder: the long run's NTP stage (if it has one) and its checkpoint at
    ``start``."""
    if (folder / CONTRASTIVE).exists():
        return
    ckpt = main / CONTRASTIVE / f"checkpoint-{start}"
    if not (ckpt / "trainer_state.json").exists():
        raise SystemExit(f"{ckpt} is missing: the long run must save at every decay start")
    if (main / NTP).exists():
        shutil.copytree(main / NTP, folder / NTP)
    shutil.copytree(ckpt, folder / CONTRASTIVE / ckpt.name)


def runtime(folder: Path, stage: str) -> tuple[float, int] | None:
    """(seconds, steps) of a finished stage of a run folder; None when it has not finished."""
    log = folder / stage / "log_history.json"
    return stage_runtime(log) if log.exists() else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="recipes/smollm2-135m-cpu-scale.yaml")
    ap.add_argument("--points", type=int, nargs="+", default=[130, 390, 1300])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/scaling_curve.json"))
    ap.add_argument(
        "--branches-only",
        action="store_true",
        help="score the shorter points from the long run's saved checkpoints; do not run it on",
    )
    ap.add_argument("--render", action="store_true", help="only rewrite the md/png from --out")
    args = ap.parse_args()
    if args.render:  # same rows, same command: the table, trend and plot drawn again
        saved = json.loads(args.out.read_text())
        write(args.out, saved["config"], saved["command"], saved["points"], saved["machine"])
        return
    command = command_line()
    cfg = GEMTrainingConfig.from_yaml(args.config)
    longest = cfg.contrastive_steps  # the long run's length; the last point when asked for
    if max(args.points) > longest or cfg.lr_scheduler != "warmup_stable_decay":
        need = max(args.points)
        raise SystemExit(f"{args.config}: needs warmup_stable_decay and >= {need} steps")
    starts = {p: decay_start(p, cfg.decay_ratio) for p in args.points if p < longest}
    if any(s % cfg.save_steps for s in starts.values()):
        raise SystemExit(f"save_steps={cfg.save_steps} must divide every decay start {starts}")
    main_dir = Path(cfg.output_dir)

    if not args.branches_only:
        train(cfg, resume=True)  # the long run (skipped stage by stage when finished)
    ntp_s = (runtime(main_dir, NTP) or (0.0, 0))[0]  # a recipe may have no NTP stage
    main_run = runtime(main_dir, CONTRASTIVE)
    if longest in args.points and main_run is None:
        raise SystemExit(f"the long run ({longest} steps) has not finished: drop that point")
    # seconds per step of the long run (a resumed run's train_runtime counts its last part only)
    per_step = whole_run_seconds(main_dir, *main_run) / main_run[1] if main_run else None

    rows = previous_rows(args.out)
    for point in sorted(args.points):
        folder = main_dir if point == longest else main_dir / f"point-{point}"
        if point == longest:
            seconds = ntp_s + per_step * point
        else:
            branch(main_dir, folder, starts[point])
            over = [f"output_dir={folder}", f"contrastive_steps={point}"]
            over.append(f"pair_pool_steps={longest}")
            if not is_gemlm_folder(folder / "model"):  # trained already: not loaded again
                train(GEMTrainingConfig.from_yaml(args.config, over), resume=True)
            decay_s, _ = stage_runtime(folder / CONTRASTIVE / "log_history.json")
            pace = per_step or checkpoint_pace(main_dir)
            seconds = ntp_s + pace * starts[point] + decay_s
        pairs = point * cfg.contrastive_batch_size * cfg.gradient_accumulation_steps
        label = f"x{pairs / V3_PAIRS:.3g}"
        report = folder / "report.json"
        if not report.exists():
            evaluate(
                [f"{label}=gem:{bf16_model(folder / 'model')}"],
                "report",
                report.with_suffix(".md"),
                generation=False,
                command=command,
            )
        scores = next(iter(json.loads(report.read_text())["results"].values()))  # one model
        row = {t: round(scores[t]["main"], 2) for t in TASKS if t in scores}
        row["mean"] = round(sum(row.values()) / len(row), 2)
        rows[label] = {
            "steps": point,
            "pairs": pairs,
            "train_minutes": round(seconds / 60, 1),
            "model": str(folder / "model-bf16"),
            **row,
        }
        rows = dict(sorted(rows.items(), key=lambda kv: kv[1]["steps"]))
        print(label, rows[label], flush=True)
        write(args.out, args.config, command, rows)


def checkpoint_times(main: Path) -> list[tuple[int, float]]:
    """(step, write time) of the long run's complete checkpoints, by step."""
    return sorted(
        (int(p.name.split("-")[1]), p.stat().st_mtime)
        for p in (main / CONTRASTIVE).glob("checkpoint-*")
        if (p / "trainer_state.json").exists()
    )


def pace(ckpts: list[tuple[int, float]]) -> float:
    """Seconds per step from (step, write time) of two or more checkpoints: the time between
    consecutive writes, summed, over the steps between them (wall time, checkpoint saving
    included), leaving out a gap over 3x the median one (a stop and resume between two).

    >>> pace([(3, 0.0), (6, 30.0), (9, 1000.0), (12, 1030.0)])
    10.0
    """
    gaps = [(t1 - t0, b - a) for (a, t0), (b, t1) in pairwise(ckpts)]
    typical = float(np.median([t / n for t, n in gaps]))
    kept = [(t, n) for t, n in gaps if t / n <= 3 * typical]
    return sum(t for t, _ in kept) / sum(n for _, n in kept)


def checkpoint_pace(main: Path) -> float:
    """Seconds per step of the long run, from its checkpoints (:func:`pace`)."""
    ckpts = checkpoint_times(main)
    if len(ckpts) < 2:
        raise SystemExit(f"{main}: fewer than two checkpoints, no pace to time the points by")
    return pace(ckpts)


def whole_run_seconds(main: Path, seconds: float, steps: int) -> float:
    """The long run's training time: the Trainer's ``train_runtime``, or, for a run resumed from
    a checkpoint (its ``train_runtime`` then counts only the last part, under 90% of
    ``steps`` at the checkpoint pace), the checkpoint pace x ``steps``."""
    ckpts = checkpoint_times(main)
    if len(ckpts) < 2:
        return seconds  # no pace to check it against
    whole = pace(ckpts) * steps
    return whole if seconds < 0.9 * whole else seconds


def bf16_model(model: Path) -> Path:
    """``model`` with its adapter's floating tensors cast to bf16, as ``tools/ship_model.py``
    ships it (beside it, ``<model>-bf16``): each point is scored as it would ship, so the shipped
    point's report is its model card's."""
    out = model.with_name(model.name + "-bf16")
    if not out.exists():
        tmp = model.with_name(f".{out.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(model, tmp)
        for file in (model / ADAPTER_DIR).glob("*.safetensors"):
            bf16_copy(file, tmp / ADAPTER_DIR / file.name)  # over the copy, from the original
        tmp.rename(out)
    return out


def previous_rows(out: Path) -> dict[str, dict]:
    """The points an earlier run wrote to ``out`` (none when it does not exist)."""
    return json.loads(out.read_text())["points"] if out.exists() else {}


# issue 22's targets for the shipped self-supervised model (report suite, x100)
TARGETS = {"STSBenchmark": 78.0, "Banking77": 72.0, "Emotion": 42.0, "SciFact": 72.0,
           "SQuADRetrieval": 82.0, "mean": 70.0}  # fmt: skip


def trend(pairs: list[int], scores: list[float], target: float) -> tuple[float, float | None]:
    """Least-squares ``score = a + b log10(pairs)`` over the points: (b, the gain per 10x pairs;
    the pairs at which the line reaches ``target``, None when it does not rise). An
    extrapolation, not a measurement: it says how far the measured trend is from a target.

    >>> trend([1000, 10000, 100000], [60.0, 62.0, 64.0], 70.0)
    (2.0, 100000000.0)
    >>> trend([1000, 10000], [60.0, 59.0], 70.0)
    (-1.0, None)
    """
    x = np.log10(np.asarray(pairs, dtype=float))
    slope, intercept = np.polyfit(x, np.asarray(scores, dtype=float), 1)
    slope = round(float(slope), 6)
    if slope <= 0:
        return slope, None
    return slope, float(10 ** round((target - intercept) / slope, 6))


def trend_lines(rows: dict[str, dict]) -> list[str]:
    """What the curve says it would take: each target's measured best and the trend's pairs."""
    points = list(rows.values())
    if len(points) < 2:
        return []
    per_pair = max(r["train_minutes"] / r["pairs"] for r in points)  # the slowest point's pace
    lines = ["", "What the trend (score vs log10 pairs, least squares) says about issue 22's "
             "targets; an extrapolation, not a measurement:", ""]  # fmt: skip
    for task, target in TARGETS.items():
        have = [(r["pairs"], r[task]) for r in points if task in r]
        if len(have) < 2:
            continue
        slope, need = trend([p for p, _ in have], [s for _, s in have], target)
        best = max(s for _, s in have)
        if best >= target:
            what = "reached"
        elif need is None:
            what = "the trend does not rise: more pairs of this recipe do not reach it"
        elif need > 1000 * max(p for p, _ in have):
            what = "over 1000x the longest point's pairs: not by more pairs of this recipe"
        else:
            what = f"~{need:,.0f} pairs (~{need * per_pair / 60:,.0f} h at this pace)"
        lines.append(f"- {task}: target {target:g}, best {best:.1f}, {slope:+.2f} per 10x: {what}")
    return lines


def write(
    out: Path, config: str, command: str, rows: dict[str, dict], measured_on: dict | None = None
) -> None:
    """The JSON, table, trend lines and plot of ``rows``; ``measured_on``: the machine block of
    the run that measured them (default: this machine)."""
    table = md_table(
        ["point", "pairs", *TASKS, "mean", "train min"],
        [
            [label, f"{r['pairs']:,}", *(f"{r[t]:.1f}" if t in r else "" for t in TASKS),
             f"{r['mean']:.1f}", r["train_minutes"]]
            for label, r in rows.items()
        ],
    )  # fmt: skip
    lines = [
        f"# Scaling curve ({config}, report suite embedding tasks, special_only)",
        "",
        f"Command: `{command}`",
        "",
        *table,
        *trend_lines(rows),
    ]
    result = {"config": config, "command": command, "points": rows}
    if measured_on is not None:
        result["machine"] = measured_on
    write_result(out, result, markdown="\n".join(lines) + "\n", with_torch=True)
    print("\n".join(lines))
    plot(out.with_suffix(".png"), rows)


def plot(path: Path, rows: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [r["pairs"] for r in rows.values()]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for task in (*TASKS, "mean"):
        ax.plot(pairs, [r.get(task) for r in rows.values()], marker="o", label=task,
                linewidth=2.5 if task == "mean" else 1.2)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("contrastive pairs seen (log)")
    ax.set_ylabel("score (x100)")
    ax.set_title("GEM special_only, recipe v3 mix: quality vs training pairs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
