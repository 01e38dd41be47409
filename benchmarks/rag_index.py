"""Indexing speed vs ``group_size`` (passages embedded and stored per round), side by side.

``gemlm rag index`` hands ``encode_document`` a group of passages at a time; ``encode`` sorts a
group by length before cutting batches of 32, so larger groups pad less. This indexes the same
SQuAD-dev paragraphs into fresh local Qdrant collections with each group size, alternating
over rounds (best round kept), and reports passages/s and the ratio.

    python -m benchmarks.rag_index [--paragraphs 384] [--groups 32,512] [--rounds 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from benchmarks._common import RESULTS, ROOT, best_of, load_squad, write_result
from gemlm.model import GEMModel
from gemlm.rag.indexing import index_paths
from gemlm.rag.store import RagStore, model_id_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "runs/smollm2-135m-cpu-special-only/model"))
    ap.add_argument("--paragraphs", type=int, default=384)
    ap.add_argument("--groups", default="32,512")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "rag_index.json")
    args = ap.parse_args()
    hf_logging.set_verbosity_error()
    groups = [int(g) for g in args.groups.split(",")]
    squad, _ = load_squad(args.paragraphs)
    n = sum(len(a["paragraphs"]) for a in squad["data"])
    gem = GEMModel.from_pretrained(args.model)
    with tempfile.TemporaryDirectory(prefix="gemlm-rag-index-") as tmp:
        corpus = Path(tmp) / "squad.json"
        corpus.write_text(json.dumps(squad))
        fresh = itertools.count()

        def index(group: int) -> float:
            """Seconds to index the corpus into a fresh store (opening it not counted)."""
            with RagStore(Path(tmp) / f"q{next(fresh)}-{group}") as store:
                t = time.perf_counter()
                rep = index_paths(
                    gem, store, "c", [corpus], model_id=model_id_for(args.model), group_size=group
                )
                seconds = time.perf_counter() - t
                assert rep.added == n, rep
            return seconds

        gem.encode_document(["warm-up"])
        best = best_of(
            {g: partial(index, g) for g in groups},
            args.rounds,
            warmup=False,
            self_timed=True,
            show=lambda g, s: f"group {g}: {n / s:.2f} passages/s",
        )
    result = {
        "model": args.model,
        "passages": n,
        "rounds": args.rounds,
        "seconds": best,
        "passages_per_s": {g: n / s for g, s in best.items()},
        "speedup_vs_first": {g: best[groups[0]] / s for g, s in best.items()},
        "dtype": gem.precision,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    write_result(args.out, result)
    print(json.dumps(result["speedup_vs_first"]))


if __name__ == "__main__":
    main()
