"""The report suite on one trained model, by another revision and by this tree: every score equal?

``engine_parity`` proves the vectors and token ids equal; this proves what users read off them
is: each side runs ``gemlm eval --suite report --no-generation`` in its own process (the
baseline from a git worktree, as ``engine_parity`` does), on the same model folder, and every
metric of every task is compared (``max_abs_diff`` over all of them, 0.0 = identical).
Reports already in ``--work`` are reused, so an interrupted run continues.

    python -m benchmarks.report_parity --baseline ae681a2 --model runs/shipped-300 \\
        --work runs/parity-report --out benchmarks/results/report_parity_issue24.json
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._common import (
    REPORT_TASKS,
    RESULTS,
    ROOT,
    baseline_tree,
    command_line,
    md_table,
    tree_env,
    write_result,
)


def revision(tree: Path) -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def run_eval(tree: Path, model: Path, out: Path, dtype: str, label: str) -> tuple[dict, str]:
    """``gemlm eval`` of ``model`` by the gemlm in ``tree`` -> its report and the revision
    that wrote it, via ``out`` (report.md/.json + ``revision``; reused when they exist)."""
    report, rev = out / "report.json", out / "revision"
    if not report.exists():
        out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "gemlm.cli", "eval", "-m", f"{label}=gem:{model}"]
        cmd += ["--suite", "report", "--no-generation", "--dtype", dtype]
        cmd += ["--out", str(out / "report.md")]
        with open(out / "eval.log", "w") as log:
            subprocess.run(cmd, cwd=tree, env=tree_env(tree), check=True, stdout=log, stderr=log)
        rev.write_text(revision(tree) + "\n")
    return json.loads(report.read_text()), rev.read_text().strip()


TIMING = {"seconds", "evaluation_time"}  # how long a task took: not a score


def flat(scores: Any, prefix: str = "") -> dict[str, float]:
    """Every number of a task's result but its timings, by its dotted path.

    >>> flat({"main": 1.0, "seconds": 9.5, "scores": {"a": 2, "b": "x"}})
    {'main': 1.0, 'scores.a': 2.0}
    """
    out: dict[str, float] = {}
    for key, value in scores.items():
        if key in TIMING:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, path + "."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[path] = float(value)
    return out


def compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Per task: both main scores and the largest difference over all its numbers (NaN equal
    to NaN; a number only one side has counts as a difference of inf)."""
    tasks: dict[str, Any] = {}
    for task in sorted(set(old) | set(new)):
        a, b = flat(old.get(task, {})), flat(new.get(task, {}))
        diffs = [
            0.0
            if (k in a and k in b and math.isnan(a[k]) and math.isnan(b[k]))
            else abs(a[k] - b[k])
            if k in a and k in b
            else math.inf
            for k in set(a) | set(b)
        ]
        tasks[task] = {
            "baseline": a.get("main"),
            "new": b.get("main"),
            "numbers": len(diffs),
            "max_abs_diff": max(diffs, default=0.0),
        }
    return tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="git revision to compare against")
    ap.add_argument("--model", type=Path, required=True, help="a trained gemlm model folder")
    ap.add_argument("--work", type=Path, default=Path("runs/report-parity"))
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--label", default="model", help="the model's column in both reports")
    ap.add_argument("--out", type=Path, default=RESULTS / "report_parity.json")
    args = ap.parse_args()
    model, work = args.model.resolve(), args.work.resolve()
    with baseline_tree(args.baseline) as tree:
        old, old_rev = run_eval(tree, model, work / "baseline", args.dtype, args.label)
    new, new_rev = run_eval(ROOT, model, work / "new", args.dtype, args.label)
    tasks = compare(old["results"][args.label], new["results"][args.label])
    identical = all(t["max_abs_diff"] == 0.0 for t in tasks.values())
    rows = [
        [task, f"{t['baseline']:.3f}", f"{t['new']:.3f}", t["numbers"], t["max_abs_diff"]]
        for task, t in sorted(tasks.items(), key=lambda kv: _order(kv[0]))
    ]
    md = [
        f"# Report suite by {old_rev} and by {new_rev} on {args.model}",
        "",
        *md_table(["task", "baseline main", "new main", "numbers", "max abs diff"], rows),
        "",
        f"Identical: {identical}. `{command_line()}`",
    ]
    write_result(
        args.out,
        {
            "what": "report suite (embedding tasks) on one model by two revisions",
            "baseline": old_rev,
            "new": new_rev,
            "model": str(args.model),
            "command": command_line(),
            "identical": identical,
            "tasks": tasks,
            "seconds": {
                "baseline": old["meta"].get("seconds_total"),
                "new": new["meta"].get("seconds_total"),
            },
        },
        markdown="\n".join(md) + "\n",
    )
    print("\n".join(md))


def _order(task: str) -> int:
    return REPORT_TASKS.index(task) if task in REPORT_TASKS else len(REPORT_TASKS)


if __name__ == "__main__":
    main()
