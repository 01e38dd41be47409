"""One round of ``engine_parity`` on one side, in a process that imports that side's ``gemlm``.

``engine_parity`` runs this file by its path with ``PYTHONPATH`` set to the tree under test
(the baseline's worktree or this checkout), so it may use only what both trees have:
``gemlm``'s public model API, numpy and the standard library; never ``benchmarks._common``,
which an older tree does not have. The texts come from the parent, so both sides embed the
same ones.

    python benchmarks/_parity_child.py --tree TREE --texts TEXTS.json --out-npz OUT.npz
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import gemlm
from gemlm.model import GEMModel

PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three prime numbers.",
    "Explain what an embedding is in one sentence.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", required=True, help="the tree gemlm must come from")
    ap.add_argument("--texts", required=True, help="a JSON list of the texts to embed")
    ap.add_argument("--out-npz", required=True, help="vectors here, the rest beside it as .json")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--new-tokens", type=int, default=32)
    args = ap.parse_args()
    assert Path(gemlm.__file__).resolve().is_relative_to(Path(args.tree).resolve()), gemlm
    gem = GEMModel.from_pretrained(args.model)
    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    ids, _ = gem.tokenize_for_embedding(texts)
    if hasattr(gem, "embed_packed"):  # the baseline
        packed = lambda x: gem.embed_packed(x, row_tokens=64, max_tokens=1024)  # noqa: E731
    else:
        packed = lambda x: gem.embed_ids(x, packed=True, row_tokens=64, max_tokens=1024)  # noqa: E731
    gem.encode(texts[:64])  # warm-up
    packed(ids[:64])
    gem.complete(PROMPTS[0], max_new_tokens=4, temperature=0.0)
    t = time.perf_counter()
    encoded = gem.encode(texts, batch_size=32)
    t_encode = time.perf_counter() - t
    t = time.perf_counter()
    pvec = packed(ids).numpy()
    t_packed = time.perf_counter() - t
    t, gen = time.perf_counter(), []
    for p in PROMPTS:
        gen.append(gem.complete(p, max_new_tokens=args.new_tokens, temperature=0.0).token_ids)
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


if __name__ == "__main__":
    main()
