"""Before/after a refactor, side by side in one run: the same vectors, tokens and speed?

    python -m benchmarks.engine_parity --baseline 5ae90aa [--model NAME_OR_FOLDER ...] [--n 1200]
        [--rounds 3] [--serve-rounds 2]

Checks ``--baseline`` out into a temporary git worktree, then runs child processes
(``_parity_child.py``) that import ``gemlm`` from the baseline tree or from this one
(``PYTHONPATH``), alternating B N N B B N ... so drift on a noisy machine hits both sides alike.
Each child loads one ``--model`` (several may be given: e.g. the plain base, an
``adapter_scope: all`` folder and a ``special_only`` folder, the three kinds gemlm makes; a
folder must be loadable by both trees) in the dtype its tree picks, and times, on the same
STS-B sentences:

- ``encode`` (batch 32): the vectors and texts/s;
- the server's packed path (rows of 64 tokens, 1,024 tokens per forward: ``gemlm serve``'s
  defaults), ``embed_packed`` before and ``embed_ids(packed=True)`` after;
- greedy completion of a few prompts (``--new-tokens`` each): the token ids and tokens/s.

The JSON gives, per model and path, the largest absolute difference and the smallest cosine
between the two sides' vectors, whether every generated id is equal, and new/baseline
throughput (best round of each side). ``--serve-rounds N`` then runs each tree's
``benchmarks.serve_load`` N times on the first model, alternating, and reports each run's own
server/offline ratio (what that benchmark is about; it measures both in one run) and each
side's best.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import (
    RESULTS,
    ROOT,
    agreement,
    baseline_tree,
    command_line,
    machine,
    stsb_sentences,
    tree_env,
    write_result,
)

CHILD = Path(__file__).resolve().parent / "_parity_child.py"


def run_child(
    tree: Path, model: str, args: argparse.Namespace, texts: Path, out: Path
) -> dict[str, Any]:
    cmd = [sys.executable, str(CHILD), "--tree", str(tree), "--texts", str(texts)]
    cmd += ["--out-npz", str(out), "--model", model, "--new-tokens", str(args.new_tokens)]
    done = subprocess.run(cmd, env=tree_env(tree), cwd=tree, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{tree}: child failed on {model}:\n{done.stderr[-3000:]}")
    result = json.loads(out.with_suffix(".json").read_text())
    result["vectors"] = dict(np.load(out))
    return result


def serve_ratio(tree: Path, model: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    # ``-m`` from the tree runs that tree's serve_load (in an older tree, where benchmarks/ is
    # no package yet, as a namespace package: the same file ``python benchmarks/...`` ran)
    cmd = [sys.executable, "-m", "benchmarks.serve_load", "--model", model]
    cmd += ["--requests", str(args.serve_requests), "--out", str(out)]
    subprocess.run(cmd, check=True, env=tree_env(tree), cwd=tree, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def compare(sides: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One model's verdict from its rounds on both sides: vectors, ids, best-round throughput."""
    b, n = sides["baseline"][0], sides["new"][0]
    out: dict[str, Any] = {
        "tokens_embedded": {"baseline": b["tokens_embedded"], "new": n["tokens_embedded"]},
        "vectors": {k: agreement(b["vectors"][k], n["vectors"][k]) for k in ("encode", "packed")},
        "generated_ids_equal": b["generated"] == n["generated"],
        "throughput": {},
    }
    for key in ("encode_texts_per_s", "packed_texts_per_s", "generate_tokens_per_s"):
        best = {s: max(r[key] for r in sides[s]) for s in sides}
        out["throughput"][key] = {**best, "new_over_baseline": best["new"] / best["baseline"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default="5ae90aa", help="git revision to compare against")
    ap.add_argument("--model", nargs="+", default=["smollm2-135m-instruct"])
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--serve-rounds", type=int, default=0, help="serve_load.py runs per tree")
    ap.add_argument("--serve-requests", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS / "engine_parity.json")
    args = ap.parse_args()
    # children run in their tree (cwd): a model folder given relative to here must be absolute
    args.model = [str(Path(m).resolve()) if Path(m).exists() else m for m in args.model]

    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        m: {"baseline": [], "new": []} for m in args.model
    }
    with tempfile.TemporaryDirectory() as tmp, baseline_tree(args.baseline) as base:
        texts = Path(tmp) / "texts.json"
        texts.write_text(json.dumps(stsb_sentences(args.n)), encoding="utf-8")
        trees = {"baseline": base, "new": ROOT}
        for r in range(args.rounds):
            order = ["baseline", "new"] if r % 2 == 0 else ["new", "baseline"]
            for i, model in enumerate(args.model):
                for side in order:
                    out = Path(tmp) / f"{side}{r}_{i}.npz"
                    res = run_child(trees[side], model, args, texts, out)
                    runs[model][side].append(res)
                    rates = ", ".join(f"{k} {v:.1f}" for k, v in res.items() if k.endswith("_s"))
                    print(f"round {r} {model} {side}: {rates}", flush=True)
        serve: dict[str, list[dict[str, Any]]] = {"baseline": [], "new": []}
        for r in range(args.serve_rounds):
            for side in ["baseline", "new"] if r % 2 == 0 else ["new", "baseline"]:
                out = Path(tmp) / f"serve_{side}{r}.json"
                res = serve_ratio(trees[side], args.model[0], args, out)
                serve[side].append(res)
                print(f"serve round {r} {side}: {res['summary']}", flush=True)

    report: dict[str, Any] = {
        "what": "this tree vs --baseline, child processes alternating, best round per side",
        "baseline": args.baseline,
        "new": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),  # fmt: skip
        "command": command_line(),
        "machine": machine(with_torch=True) | {"threads": os.cpu_count()},  # the children's host
        "texts": args.n,
        "rounds": args.rounds,
        "models": {model: compare(sides) for model, sides in runs.items()},
    }
    if args.serve_rounds:
        keys = ("summary", "offline", "embed_only")
        report["serve_load"] = {s: [{k: r.get(k) for k in keys} for r in serve[s]] for s in serve}
        ratio = {
            s: max(r["summary"]["throughput_vs_offline_encode"] for r in serve[s]) for s in serve
        }
        report["serve_load_best_ratio"] = ratio
    write_result(args.out, report, indent=1)
    print(json.dumps(report["models"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
