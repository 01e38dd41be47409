"""Cost of the query embedding when answering: answer alone vs embed + answer (naive, KV reuse).

For a few SQuAD questions, the prompt holds the question and 3 paragraphs (the gold one and two
more from its article, as a retriever would return). Per question, three methods run
interleaved over rounds (best round kept), in one process, so only the ratios matter:

* ``answer``: generation alone (prefill the whole prompt, decode);
* ``naive``: ``encode_query`` (the model's own query prompt, a separate forward) + ``answer``;
* ``reuse``: one forward over ``<chat header><question><readout tail>`` that gives the
  embedding and the KV cache of ``<chat header><question>``; generation prefills only the rest;
* ``split``: no embedding, the prompt prefilled in two calls cut where ``reuse`` cuts it: the
  price of continuing from a cache, which ``reuse`` pays too.

Also timed: the attention kernel alone (``scaled_dot_product_attention``, the model's head
shapes, one layer x its layer count), over the whole prompt with ``is_causal`` (what one-call
prefill runs) and over the prompt minus its shared prefix with an explicit lower-right causal
mask (what a continuation from a cache runs).

Each method decodes exactly ``--new-tokens`` tokens (EOS ignored), and once more with 1 new
token (the prefill-only worst case for the overhead).

    python -m benchmarks.rag_reuse [--questions 4] [--rounds 3] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache
from transformers.utils import logging as hf_logging

from benchmarks._common import RESULTS, ROOT, best_of, squad_dev, write_result
from gemlm.model import GEMModel, Sampling
from gemlm.rag import prompting, reuse


def squad_cases(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` seeded questions, each with its paragraph and the next two of its article."""
    data = squad_dev()
    cases = []
    for article in data["data"]:
        paras = article["paragraphs"]
        for i, p in enumerate(paras):
            others = [paras[(i + 1) % len(paras)], paras[(i + 2) % len(paras)]]
            for qa in p["qas"]:
                cases.append(
                    {
                        "question": qa["question"],
                        "sources": [
                            {"title": article["title"], "text": x["context"]} for x in [p, *others]
                        ],
                    }
                )
    return random.Random(seed).sample(cases, n)


def attention_kernel_ms(m: GEMModel, total: int, cached: int, reps: int = 10) -> dict[str, float]:
    """SDPA time (ms, x layers) for a prompt of ``total`` tokens: one call vs after a cache."""
    import torch.nn.functional as F

    cfg = m.model.config.get_text_config()
    heads, layers = cfg.num_attention_heads, cfg.num_hidden_layers
    dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    q_len = total - cached

    def t(q: torch.Tensor, kv: torch.Tensor, **kw: Any) -> float:
        sdpa = partial(F.scaled_dot_product_attention, q, kv, kv, **kw)
        return 1000 * best_of({"sdpa": sdpa}, reps, show=None)["sdpa"] * layers

    kv = torch.randn(1, heads, total, dim, dtype=m.dtype)
    lower_right = torch.ones(q_len, total, dtype=torch.bool).tril(cached)  # (q_len, total)
    return {
        "one_call_is_causal": t(
            torch.randn(1, heads, total, dim, dtype=m.dtype), kv, is_causal=True
        ),
        "continuation_masked": t(
            torch.randn(1, heads, q_len, dim, dtype=m.dtype), kv, attn_mask=lower_right
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "runs/smollm2-135m-cpu-special-only/model"))
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "rag_reuse.json")
    args = ap.parse_args()
    hf_logging.set_verbosity_error()
    m = GEMModel.from_pretrained(args.model, dtype=args.dtype)
    tok = m.tokenizer
    header = prompting.chat_header(m)
    cases = squad_cases(args.questions, args.seed)

    @torch.inference_mode()
    def generate(ids: list[int], cache: Any, new_tokens: int) -> list[int]:
        """The engine's generate settings, forced to ``new_tokens`` tokens (min_new_tokens)."""
        gen = m.generator.generate_kwargs(len(ids), Sampling(max_new_tokens=new_tokens))
        gen["min_new_tokens"] = new_tokens
        extra = {"past_key_values": cache} if cache is not None else {}
        x = torch.tensor([ids])
        out = m.model.generate(x, attention_mask=torch.ones_like(x), **extra, **gen)
        return out[0, len(ids) :].tolist()

    def run(method: str, case: dict[str, Any], new_tokens: int) -> tuple[float, int]:
        q = case["question"]
        ids = tok(
            m.chat_prompt(prompting.messages_for(q, case["sources"])), add_special_tokens=False
        )["input_ids"]
        t = time.perf_counter()
        cache, reused = None, 0
        if method == "naive":
            m.encode_query(q)
        elif method == "reuse":
            fwd = m.embed_keep_cache(tok(header + q, add_special_tokens=False)["input_ids"])
            cache, reused = reuse.prepare_cache(fwd, ids)
        elif method == "split":
            head = tok(header + q, add_special_tokens=False)["input_ids"]
            reused = reuse.common_prefix(head, ids)
            cache = DynamicCache(config=m.model.config)
            with torch.inference_mode():
                m.model(torch.tensor([ids[:reused]]), past_key_values=cache, use_cache=True)
        out = generate(ids, cache, new_tokens)
        assert len(out) == new_tokens
        return time.perf_counter() - t, reused

    methods = ("answer", "naive", "reuse", "split")
    run("answer", cases[0], 2)  # warm-up
    results: dict[str, Any] = {}

    def timed(method: str, i: int, new_tokens: int, reused: dict[int, int]) -> float:
        secs, n = run(method, cases[i], new_tokens)
        reused[i] = max(reused.get(i, 0), n)  # tokens the reuse / split layouts share
        return secs

    for new_tokens in (args.new_tokens, 1):
        reused: dict[int, int] = {}
        runs = {
            (mt, i): partial(timed, mt, i, new_tokens, reused)
            for i in range(len(cases))
            for mt in methods
        }
        best = best_of(
            runs,
            args.rounds,
            warmup=False,
            self_timed=True,
            show=None,
        )
        total = {mt: sum(best[mt, i] for i in range(len(cases))) for mt in methods}
        results[f"new_tokens={new_tokens}"] = {
            "seconds": total,
            "overhead_naive_pct": 100 * (total["naive"] / total["answer"] - 1),
            "overhead_reuse_pct": 100 * (total["reuse"] / total["answer"] - 1),
            "overhead_split_prefill_pct": 100 * (total["split"] / total["answer"] - 1),
            "reused_tokens_mean": sum(reused.values()) / len(reused),
        }
        print(new_tokens, results[f"new_tokens={new_tokens}"], flush=True)

    prompt_lens = [
        len(
            tok(
                m.chat_prompt(prompting.messages_for(c["question"], c["sources"])),
                add_special_tokens=False,
            )["input_ids"]
        )
        for c in cases
    ]
    q_lens = [len(tok(c["question"], add_special_tokens=False)["input_ids"]) for c in cases]
    results["attention_kernel_ms"] = attention_kernel_ms(
        m,
        sum(prompt_lens) // len(cases),
        round(results[f"new_tokens={args.new_tokens}"]["reused_tokens_mean"]),
    )
    print(results["attention_kernel_ms"])
    results["setup"] = {
        "model": args.model,
        "dtype": m.precision,
        "questions": len(cases),
        "rounds": args.rounds,
        "prompt_tokens_mean": sum(prompt_lens) / len(cases),
        "question_tokens_mean": sum(q_lens) / len(cases),
        "chat_header_tokens": len(tok(header, add_special_tokens=False)["input_ids"]),
        "readout_tail_tokens": len(m.embedder.tail),
        "query_prompt": m.config.prompts.get("query", ""),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    write_result(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
