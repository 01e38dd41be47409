"""Embedding throughput on the default model: gemlm vs sentence-transformers vs raw transformers.

All methods run in one process, interleaved over rounds (best round kept), on the same
STS-B sentences, so the ratios are comparable even on a noisy machine. MFU is measured
against a bf16 matmul peak timed in the same run.

    python -m benchmarks.embed_throughput [--n 1200] [--rounds 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from functools import partial
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer, models
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from benchmarks._common import RESULTS, best_of, rates, stsb_sentences, write_result
from gemlm.model import GEMModel
from gemlm.sources import resolve


def matmul_peak(dtype: torch.dtype = torch.bfloat16, n: int = 2048, reps: int = 20) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def raw_transformers(folder: str, dtype: torch.dtype, batch_size: int):
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=dtype).eval()

    @torch.inference_mode()
    def encode(texts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), batch_size):  # input order, no length sorting
            enc = tok(texts[i : i + batch_size], padding=True, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"][..., None].to(h.dtype)
            out.append(((h * m).sum(1) / m.sum(1)).float())
        return torch.cat(out)

    return encode


def sentence_transformers_mean(folder: str, dtype: torch.dtype, batch_size: int):
    # Pin plain-text input: sentence-transformers 6 otherwise routes text through the chat template
    # (system prompt included), which would make it embed ~10x more tokens than the others.
    word = models.Transformer(
        folder,
        model_args={"dtype": dtype},
        modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        module_output_name="token_embeddings",
    )
    st = SentenceTransformer(
        modules=[word, models.Pooling(word.get_word_embedding_dimension(), "mean")], device="cpu"
    )
    st.tokenizer.pad_token = st.tokenizer.pad_token or st.tokenizer.eos_token
    return lambda texts: st.encode(texts, batch_size=batch_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS / "embed_throughput.json")
    args = ap.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    texts = stsb_sentences(args.n)
    folder = resolve(args.model)
    gem_bf16 = GEMModel.from_pretrained(args.model, dtype="bfloat16")
    gem_fp32 = GEMModel.from_pretrained(args.model, dtype="float32")
    n_tokens = sum(len(ids) for ids in gem_bf16.tokenize_for_embedding(texts)[0])
    bs = args.batch_size
    methods = {
        "gemlm_bf16": lambda t: gem_bf16.encode(t, batch_size=bs),
        "gemlm_fp32": lambda t: gem_fp32.encode(t, batch_size=bs),
        "sentence_transformers_mean_fp32": sentence_transformers_mean(folder, torch.float32, bs),
        "sentence_transformers_mean_bf16": sentence_transformers_mean(folder, torch.bfloat16, bs),
        "transformers_raw_bf16": raw_transformers(folder, torch.bfloat16, bs),
    }
    for fn in methods.values():  # warm-up
        fn(texts[:64])
    best = best_of(
        {name: partial(fn, texts) for name, fn in methods.items()},
        args.rounds,
        warmup=False,
        show=lambda name, dt: f"{name:34s} {len(texts) / dt:8.1f} texts/s",
    )

    peak = matmul_peak()
    cfg = gem_bf16.model.config
    backbone_params = sum(p.numel() for p in gem_bf16.model.get_decoder().parameters())
    embed_params = gem_bf16.model.get_input_embeddings().weight.numel()
    flops_per_token = 2 * (backbone_params - embed_params)  # matmul FLOPs, attention excluded
    results = rates(best, len(texts), n_tokens)
    for res in results.values():
        res["mfu_vs_bf16_matmul_peak"] = round(res["tokens_per_s"] * flops_per_token / peak, 4)
    ref = results["sentence_transformers_mean_fp32"]["texts_per_s"]
    ref_bf16 = results["sentence_transformers_mean_bf16"]["texts_per_s"]
    report = {
        "model": args.model,
        "architecture": cfg.architectures,
        "texts": len(texts),
        "tokens_incl_specials": n_tokens,
        "batch_size": bs,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "bf16_matmul_peak_gflops": round(peak / 1e9, 1),
        "results": results,
        "ratios": {
            "gemlm_bf16_vs_st_fp32_default": round(results["gemlm_bf16"]["texts_per_s"] / ref, 2),
            "gemlm_bf16_vs_st_bf16": round(results["gemlm_bf16"]["texts_per_s"] / ref_bf16, 2),
            "gemlm_fp32_vs_st_fp32": round(results["gemlm_fp32"]["texts_per_s"] / ref, 2),
            "gemlm_bf16_vs_raw_bf16": round(
                results["gemlm_bf16"]["texts_per_s"]
                / results["transformers_raw_bf16"]["texts_per_s"],
                2,
            ),
        },
    }
    write_result(args.out, report)
    print(json.dumps(report["ratios"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
