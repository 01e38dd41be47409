"""Indexing speed vs ``group_size`` (passages embedded and stored per round), side by side.

``gemlm rag index`` hands ``encode_document`` a group of passages at a time; ``encode`` sorts a
group by length before cutting batches of 32, so larger groups pad less. This indexes the same
SQuAD-dev paragraphs into fresh local Qdrant collections with each group size, alternating
over rounds (best round kept), and reports passages/s and the ratio.

    python benchmarks/rag_index.py [--paragraphs 384] [--groups 32,512] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from gemlm.model import GEMModel
from gemlm.rag.indexing import index_paths
from gemlm.rag.store import RagStore, model_id_for

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from rag_squad import load_squad  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "runs/smollm2-135m-cpu-special-only/model"))
    ap.add_argument("--paragraphs", type=int, default=384)
    ap.add_argument("--groups", default="32,512")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/rag_index.json")
    args = ap.parse_args()
    hf_logging.set_verbosity_error()
    groups = [int(g) for g in args.groups.split(",")]
    squad, _ = load_squad(args.paragraphs)
    n = sum(len(a["paragraphs"]) for a in squad["data"])
    gem = GEMModel.from_pretrained(args.model)
    best = {g: float("inf") for g in groups}
    with tempfile.TemporaryDirectory(prefix="gemlm-rag-index-") as tmp:
        corpus = Path(tmp) / "squad.json"
        corpus.write_text(json.dumps(squad))
        gem.encode_document(["warm-up"])
        for r in range(args.rounds):
            for g in groups:
                with RagStore(Path(tmp) / f"q{r}-{g}") as store:
                    t = time.perf_counter()
                    rep = index_paths(
                        gem, store, "c", [corpus], model_id=model_id_for(args.model), group_size=g
                    )
                    best[g] = min(best[g], time.perf_counter() - t)
                    assert rep.added == n, rep
                print(f"group {g}: {n / best[g]:.2f} passages/s", flush=True)
    result = {
        "model": args.model,
        "passages": n,
        "rounds": args.rounds,
        "seconds": best,
        "passages_per_s": {g: n / s for g, s in best.items()},
        "speedup_vs_first": {g: best[groups[0]] / s for g, s in best.items()},
        "dtype": str(gem.dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["speedup_vs_first"]))


if __name__ == "__main__":
    main()
