"""Greedy decoding speed, side by side in one run: gemlm eager, static cache, compiled; llama.cpp.

    python -m benchmarks.decode_speed [--model smollm2-135m-gem] [--new-tokens 128]
        [--rounds 3] [--int8] [--llama-python .llama-venv/bin/python]

On the same chat prompts (token ids from the model's own chat template), greedy, ``--new-tokens``
each, timed end to end (prefill included), best of ``--rounds`` interleaved rounds:

- ``eager``: ``GEMModel.complete`` as it runs by default (a dynamic KV cache);
- ``static``: ``generator.use_static_cache(compile=False)``, a static cache per length bucket;
- ``compiled``: ``generator.use_static_cache()``, static cache + ``torch.compile``'d decode
  step; its first round (the compile) is timed apart, as ``compile_s``;
- ``int8 (eager)`` with ``--int8``: the model loaded with ``dtype="int8"`` (:mod:`gemlm.int8`;
  approximate, so its tokens may differ);
- ``llama.cpp``: llama-cpp-python (``make llamacpp``: built from source for this CPU in its
  own venv, not a gemlm dependency) on the GGUF the default model is converted from (Q4_1 for
  SmolLM2), same prompt ids, no repetition penalty, ``--threads`` threads.

Every float gemlm arm must give the eager arm's tokens (``equal_to_eager``); llama.cpp runs the
quantized weights, so its equality is reported, not required.

Also measured, to show where the floor is: the memory bandwidth (a 512 MB copy) and
``matvec_floor``, the time of one token's matrix-vector products alone (every linear layer's
weight and the LM head, in the model's dtype): decoding can be no faster than that.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import RESULTS, ROOT, best_of, command_line, md_table, write_result
from gemlm import GEMModel
from gemlm.sampling import Sampling
from gemlm.sources import ALIASES

CHILD = Path(__file__).resolve().parent / "_llama_child.py"
PROMPTS = [
    "What is the capital of France?",
    "Explain photosynthesis in two sentences.",
    "Write a short poem about the sea.",
    "Give three tips for learning a new language.",
]


def bandwidth_gbs(mb: int = 512, rounds: int = 5) -> float:
    """Memory bandwidth (GB/s) of a ``mb`` MB float32 copy (read + write), best of ``rounds``."""
    x = torch.ones(mb * 2**20 // 4)
    y = torch.empty_like(x)
    best = min(_timed(lambda: y.copy_(x)) for _ in range(rounds))
    return 2 * x.numel() * 4 / best / 1e9


def matvec_floor_s(model: torch.nn.Module, rounds: int = 5) -> tuple[float, int]:
    """Seconds of one token's matrix-vector products (each 2-D weight of a linear layer and the
    LM head, applied to one vector), best of ``rounds``; and the bytes of those weights."""
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    weights = [w for w in weights if w.dim() == 2]
    vecs = [torch.randn(1, w.shape[1], dtype=w.dtype) for w in weights]

    def run() -> None:
        for w, v in zip(weights, vecs, strict=True):
            torch.nn.functional.linear(v, w)

    with torch.inference_mode():
        best = min(_timed(run) for _ in range(rounds))
    return best, sum(w.numel() * w.element_size() for w in weights)


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def gemlm_arm(gem: GEMModel, prompts: list[list[int]], new: int) -> Any:
    s = Sampling(max_new_tokens=new, temperature=0.0)
    eos = gem.generator.eos_ids

    def run() -> list[list[int]]:
        out = [gem.generator.run(ids, s).token_ids for ids in prompts]
        return [[t for t in g if t not in eos] for g in out]

    return run


class LlamaChild:
    """The llama.cpp process, kept alive so that its rounds interleave with gemlm's."""

    def __init__(self, python: str, gguf: str, threads: int) -> None:
        self.proc = subprocess.Popen(
            [python, str(CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.info = self.ask({"gguf": gguf, "threads": threads})

    def ask(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the llama.cpp child exited (see its stderr above)")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def gguf_of(alias: str = "smollm2-135m-instruct") -> str:
    """The GGUF file inside the wheel of the base ``alias`` (the default model's base)."""
    spec = ALIASES[alias]
    found = importlib.util.find_spec(spec.modules[0])
    if found is None or not found.submodule_search_locations:
        raise SystemExit(f"{spec.package} is not installed: make setup")
    return str(Path(list(found.submodule_search_locations)[0]) / spec.files[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-gem")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--llama-python", default=str(ROOT / ".llama-venv/bin/python"))
    ap.add_argument(
        "--int8",
        action="store_true",
        help='also decode with dtype="int8" (gemlm.int8: approximate, not the same tokens)',
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "decode_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    gem = GEMModel.from_pretrained(args.model)
    prompts = [gem.prompt_ids(p, chat=True) for p in PROMPTS]
    eager = gemlm_arm(gem, prompts, args.new_tokens)
    reference = eager()
    tokens = sum(len(g) for g in reference)

    static = GEMModel(gem.model, gem.tokenizer, gem.config)
    static.generator.use_static_cache(compile=False)
    compiled = GEMModel(gem.model, gem.tokenizer, gem.config)
    compiled.generator.use_static_cache()
    arms = {
        "eager": eager,
        "static": gemlm_arm(static, prompts, args.new_tokens),
        "compiled": gemlm_arm(compiled, prompts, args.new_tokens),
    }
    if args.int8:  # another model: approximate by design, its tokens may differ
        int8 = GEMModel.from_pretrained(args.model, dtype="int8")
        arms["int8 (eager)"] = gemlm_arm(int8, prompts, args.new_tokens)
    compile_s = _timed(arms["compiled"])  # the first call of each bucket compiles
    outputs: dict[str, list[list[int]]] = {}

    llama = None
    base = gem.config.base_model or args.model
    if base != "smollm2-135m-instruct":  # the one GGUF the llama.cpp arm knows
        print(f"no llama.cpp arm: {args.model}'s base is {base}, not SmolLM2's GGUF", flush=True)
    elif Path(args.llama_python).exists():
        llama = LlamaChild(args.llama_python, gguf_of(), args.threads)
        req = {"prompts": prompts, "max_new": args.new_tokens}
        llama.ask(req)  # warm-up

        def llama_run() -> float:
            answer = llama.ask(req)
            outputs["llama.cpp"] = answer["generated"]
            return float(answer["seconds"])

    def timed(name: str) -> Any:
        def run() -> float:
            start = time.perf_counter()
            outputs[name] = arms[name]()
            return time.perf_counter() - start

        return run

    runs = {name: timed(name) for name in arms}
    if llama is not None:
        runs["llama.cpp"] = llama_run
    best = best_of(runs, args.rounds, warmup=False, self_timed=True)
    if llama is not None:
        llama.close()

    gbs = bandwidth_gbs()
    floor_s, weight_bytes = matvec_floor_s(gem.model)
    rows = {}
    for name, seconds in best.items():
        made = sum(len(g) for g in outputs[name])
        rows[name] = {
            "seconds": round(seconds, 3),
            "tokens": made,
            "tokens_per_s": round(made / seconds, 1),
            "equal_to_eager": outputs[name] == reference,
        }
    eager_rate = rows["eager"]["tokens_per_s"]
    for row in rows.values():
        row["vs_eager"] = round(row["tokens_per_s"] / eager_rate, 2)
    result = {
        "command": command_line(),
        "model": args.model,
        "model_dtype": gem.precision,
        "prompts": PROMPTS,
        "new_tokens": args.new_tokens,
        "rounds": args.rounds,
        "threads": args.threads,
        "compile_s": round(compile_s, 1),
        "llama_cpp": None if llama is None else {**llama.info, "gguf": gguf_of()},
        "memory_bandwidth_gbs": round(gbs, 1),
        "matvec_floor": {
            "weight_mb": round(weight_bytes / 2**20, 1),
            "seconds_per_token": round(floor_s, 4),
            "tokens_per_s": round(1 / floor_s, 1),
            "bandwidth_tokens_per_s": round(gbs * 1e9 / weight_bytes, 1),
        },
        "arms": rows,
        "reference_tokens": tokens,
    }
    table = md_table(
        ["arm", "tokens/s", "vs eager", "same tokens as eager"],
        [
            [n, r["tokens_per_s"], f"{r['vs_eager']:.2f}x", "yes" if r["equal_to_eager"] else "no"]
            for n, r in rows.items()
        ],
    )
    floor = result["matvec_floor"]
    lines = [
        f"# Greedy decoding, {args.model} ({gem.precision}), {args.new_tokens} new tokens x "
        f"{len(PROMPTS)} chat prompts, best of {args.rounds}",
        "",
        f"`{result['command']}`",
        "",
        *table,
        "",
        f"compile (first call): {compile_s:.1f} s; matrix-vector floor: {floor['tokens_per_s']} "
        f"tokens/s ({floor['weight_mb']} MB of weights per token); memory bandwidth {gbs:.1f} "
        f"GB/s -> {floor['bandwidth_tokens_per_s']} tokens/s if weight reads were all it cost.",
    ]
    write_result(args.out, result, markdown="\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
