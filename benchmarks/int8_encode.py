"""``dtype="int8"`` vs float32 on embedding: speed side by side in one process, and how far the
int8 vectors move (cosine to float32's, and to themselves embedded alone).

Interleaved over rounds (best kept), on the same texts: short STS-B sentences and SQuAD
paragraphs. Rows: the shipped model (``special_only``) in float32 and int8, all-MiniLM-L6-v2
(sentence-transformers, float32) as the dedicated encoder, and the float32 matmul ceiling of
this machine. On a host with native bf16 (AVX512-BF16 / AMX: where ``dtype="auto"`` is bf16)
the shipped model in bfloat16 is a row too, with int8's speedup over it and the bf16 ceiling.
Quality on the report suite is ``gemlm eval ... --dtype int8`` (see the README).

    python -m benchmarks.int8_encode [--model smollm2-135m-gem] [--n 600] [--rounds 3]
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from benchmarks._common import (
    RESULTS,
    best_of,
    command_line,
    rates,
    squad_paragraphs,
    stsb_sentences,
    write_result,
)
from benchmarks.embed_throughput import matmul_peak
from gemlm.evaluation.encoders import minilm_folder
from gemlm.int8 import KEEP_FLOAT, quantize_decoder
from gemlm.loading import default_dtype
from gemlm.model import GEMModel


def drift(q: GEMModel, f: GEMModel, texts: list[str], batch_size: int) -> dict[str, float]:
    """Cosine of int8 vectors to float32's, and of int8 alone vs in a batch (range per call)."""
    a, b = q.encode(texts, batch_size=batch_size), f.encode(texts, batch_size=batch_size)
    alone = np.stack([q.encode(t) for t in texts[:32]])
    to_float, to_self = (a * b).sum(1), (alone * a[:32]).sum(1)
    return {
        "cosine_to_float32_mean": round(float(to_float.mean()), 4),
        "cosine_to_float32_min": round(float(to_float.min()), 4),
        "cosine_alone_vs_batch_mean": round(float(to_self.mean()), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-gem")
    ap.add_argument("--n", type=int, default=600, help="STS-B test sentences")
    ap.add_argument("--paragraphs", type=int, default=120, help="SQuAD dev paragraphs")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--keep-float",
        default=",".join(KEEP_FLOAT),
        help="decoder module names left float32 (comma-separated; 'none': quantize them all)",
    )
    ap.add_argument("--out", default=str(RESULTS / "int8_encode.json"))
    args = ap.parse_args()
    keep = () if args.keep_float == "none" else tuple(args.keep_float.split(","))
    f32 = GEMModel.from_pretrained(args.model, dtype="float32")
    native_bf16 = default_dtype() == torch.bfloat16
    bf16 = GEMModel.from_pretrained(args.model, dtype="bfloat16") if native_bf16 else None
    int8 = GEMModel.from_pretrained(args.model, dtype="float32")
    quantize_decoder(int8.model, keep_float=keep)
    minilm = SentenceTransformer(minilm_folder(), device="cpu", local_files_only=True)
    sets = {"sentences": stsb_sentences(args.n), "paragraphs": squad_paragraphs(args.paragraphs)}
    out: dict[str, object] = {}
    for name, texts in sets.items():
        if not texts:
            continue
        ids, _ = f32.tokenize_for_embedding(texts)
        bs = args.batch_size
        runs = {
            "float32": partial(f32.embed_ids, ids, batch_size=bs),
            "int8": partial(int8.embed_ids, ids, batch_size=bs),
            "minilm": partial(minilm.encode, texts, batch_size=bs),
        }
        if bf16 is not None:
            runs["bfloat16"] = partial(bf16.embed_ids, ids, batch_size=bs)
        out[name] = {"texts": len(texts), "tokens": sum(len(x) for x in ids)}
        if args.rounds:  # 0: the vectors' drift only
            seconds = best_of(runs, args.rounds)
            out[name] |= {
                "results": rates(seconds, len(texts), sum(len(x) for x in ids)),
                "int8_speedup_over_float32": round(seconds["float32"] / seconds["int8"], 3),
                "int8_time_over_minilm": round(seconds["int8"] / seconds["minilm"], 3),
            }
            if bf16 is not None:
                speedup = round(seconds["bfloat16"] / seconds["int8"], 3)
                out[name] |= {"int8_speedup_over_bfloat16": speedup}
        out[name] |= drift(int8, f32, texts, bs)
        print(name, out[name])
    write_result(
        args.out,
        {
            "what": "dtype=int8 (dynamic int8 decoder linears) vs float32 (+ native bf16) encode",
            "command": command_line(),
            "model": args.model,
            "keep_float": list(keep),
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "float32_matmul_peak_gflops": round(matmul_peak(torch.float32) / 1e9, 1),
            **(
                {"bfloat16_matmul_peak_gflops": round(matmul_peak(torch.bfloat16) / 1e9, 1)}
                if native_bf16
                else {}
            ),
            "target_speedup": 1.6,
            **out,
        },
    )


if __name__ == "__main__":
    main()
