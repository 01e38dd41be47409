"""Before/after a refactor, side by side in one run: the same vectors, tokens and speed?

    python benchmarks/engine_parity.py --baseline 5ae90aa [--n 1200] [--rounds 3] [--serve-rounds 2]

Checks ``--baseline`` out into a temporary git worktree, then runs child processes that import
``gemlm`` from the baseline tree or from this one (``PYTHONPATH``), alternating B N N B B N ...
so drift on a noisy machine hits both sides alike. Each child loads the model (bf16 where the
CPU has it) and times, on the same STS-B sentences:

- ``encode`` (batch 32): the vectors and texts/s;
- the server's packed path (rows of 64 tokens, 1,024 tokens per forward: ``gemlm serve``'s
  defaults), ``embed_packed`` before and ``embed_ids(packed=True)`` after;
- greedy completion of a few prompts (``--new-tokens`` each): the token ids and tokens/s.

The JSON gives, per path, the largest absolute difference and the smallest cosine between the
two sides' vectors, whether every generated id is equal, and new/baseline throughput (best
round of each side). ``--serve-rounds N`` then runs each tree's ``benchmarks/serve_load.py`` N
times, alternating, and reports each run's own server/offline ratio (what that benchmark is
about; it measures both in one run) and each side's best.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gemlm.paths import data_dir

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three prime numbers.",
    "Explain what an embedding is in one sentence.",
]


def sts_sentences(data: Path, n: int) -> list[str]:
    with open(data / "stsbenchmark/stsb-en-test.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return list(dict.fromkeys(s for r in rows for s in r[:2]))[:n]


def child(args: argparse.Namespace) -> None:
    """One round on one side: only API that both sides have (plus the packed call's name)."""
    import gemlm
    from gemlm.model import GEMModel

    assert Path(gemlm.__file__).resolve().is_relative_to(Path(args.child).resolve()), gemlm
    gem = GEMModel.from_pretrained(args.model)
    texts = sts_sentences(data_dir(), args.n)
    ids, _ = gem.tokenize_for_embedding(texts)
    if hasattr(gem, "embed_packed"):  # the baseline
        packed = lambda x: gem.embed_packed(x, row_tokens=64, max_tokens=1024)  # noqa: E731
    else:
        packed = lambda x: gem.embed_ids(x, packed=True, row_tokens=64, max_tokens=1024)  # noqa: E731
    gem.encode(texts[:64])  # warm-up
    packed(ids[:64])
    gem.complete(PROMPTS[0], max_new_tokens=4)
    t = time.perf_counter()
    encoded = gem.encode(texts, batch_size=32)
    t_encode = time.perf_counter() - t
    t = time.perf_counter()
    pvec = packed(ids).numpy()
    t_packed = time.perf_counter() - t
    t, gen = time.perf_counter(), []
    for p in PROMPTS:
        gen.append(gem.complete(p, max_new_tokens=args.new_tokens).token_ids)
    t_gen = time.perf_counter() - t
    np.savez(args.out_npz, encode=encoded, packed=pvec)
    result = {
        "encode_texts_per_s": len(texts) / t_encode,
        "packed_texts_per_s": len(texts) / t_packed,
        "generate_tokens_per_s": sum(len(g) for g in gen) / t_gen,
        "generated": gen,
        "tokens_embedded": sum(len(x) for x in ids),
    }
    Path(args.out_npz).with_suffix(".json").write_text(json.dumps(result))


def run_child(tree: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(tree), "--out-npz", str(out)]
    cmd += ["--model", args.model, "--n", str(args.n), "--new-tokens", str(args.new_tokens)]
    env = {**os.environ, "PYTHONPATH": str(tree), "GEMLM_DATA_DIR": str(data_dir().resolve())}
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{tree}: child failed:\n{done.stderr[-3000:]}")
    result = json.loads(out.with_suffix(".json").read_text())
    result["vectors"] = dict(np.load(out))
    return result


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"max_abs_diff": float(np.abs(a - b).max()), "min_cosine": float(cos.min())}


def serve_ratio(tree: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "benchmarks/serve_load.py", "--model", args.model]
    cmd += ["--requests", str(args.serve_requests), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(tree), "GEMLM_DATA_DIR": str(data_dir().resolve())}
    subprocess.run(cmd, check=True, env=env, cwd=tree, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default="5ae90aa", help="git revision to compare against")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--serve-rounds", type=int, default=0, help="serve_load.py runs per tree")
    ap.add_argument("--serve-requests", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "engine_parity.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out-npz", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        try:
            sides: dict[str, list[dict[str, Any]]] = {"baseline": [], "new": []}
            trees = {"baseline": base, "new": ROOT}
            for r in range(args.rounds):
                order = ["baseline", "new"] if r % 2 == 0 else ["new", "baseline"]
                for side in order:
                    res = run_child(trees[side], args, Path(tmp) / f"{side}{r}.npz")
                    sides[side].append(res)
                    rates = ", ".join(f"{k} {v:.1f}" for k, v in res.items() if k.endswith("_s"))
                    print(f"round {r} {side}: {rates}", flush=True)
            serve: dict[str, list[dict[str, Any]]] = {"baseline": [], "new": []}
            for r in range(args.serve_rounds):
                for side in ["baseline", "new"] if r % 2 == 0 else ["new", "baseline"]:
                    res = serve_ratio(trees[side], args, Path(tmp) / f"serve_{side}{r}.json")
                    serve[side].append(res)
                    print(f"serve round {r} {side}: {res['summary']}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)

    b, n = sides["baseline"][0], sides["new"][0]
    report: dict[str, Any] = {
        "what": "this tree vs --baseline, child processes alternating, best round per side",
        "baseline": args.baseline,
        "new": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),  # fmt: skip
        "command": "python benchmarks/engine_parity.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": os.cpu_count()},
        "texts": args.n,
        "tokens_embedded": {"baseline": b["tokens_embedded"], "new": n["tokens_embedded"]},
        "vectors": {k: compare(b["vectors"][k], n["vectors"][k]) for k in ("encode", "packed")},
        "generated_ids_equal": b["generated"] == n["generated"],
        "throughput": {},
    }
    for key in ("encode_texts_per_s", "packed_texts_per_s", "generate_tokens_per_s"):
        best = {s: max(r[key] for r in sides[s]) for s in sides}
        report["throughput"][key] = {**best, "new_over_baseline": best["new"] / best["baseline"]}
    if args.serve_rounds:
        keys = ("summary", "offline", "embed_only")
        report["serve_load"] = {s: [{k: r.get(k) for k in keys} for r in serve[s]] for s in serve}
        ratio = {
            s: max(r["summary"]["throughput_vs_offline_encode"] for r in serve[s]) for s in serve
        }
        report["serve_load_best_ratio"] = ratio
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("vectors", "generated_ids_equal", "throughput")},
                     indent=1))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
