"""llama.cpp's side of ``benchmarks/decode_speed.py``: run in the llama venv (``make llamacpp``).

Reads one JSON request per stdin line and answers one JSON line per request on stdout:
``{"gguf": path, "threads": n}`` loads the model (answer: load seconds and the version); then
``{"prompts": [[ids], ...], "max_new": n}`` greedily continues each token-id prompt (no
repetition penalty, no sampling) and answers the generated ids and the seconds it all took,
prefill included (end to end, as gemlm's side is timed).
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    import llama_cpp  # only in the llama venv (make llamacpp); pytest collects this file too

    llm = None
    for line in sys.stdin:
        req = json.loads(line)
        if "gguf" in req:
            start = time.perf_counter()
            llm = llama_cpp.Llama(
                req["gguf"], n_ctx=2048, n_threads=req["threads"], n_batch=512, verbose=False
            )
            answer = {"load_s": time.perf_counter() - start, "version": llama_cpp.__version__}
        else:
            assert llm is not None, "load a gguf first"
            out, start = [], time.perf_counter()
            for ids in req["prompts"]:
                llm.reset()
                new: list[int] = []
                for tok in llm.generate(ids, temp=0.0, repeat_penalty=1.0, reset=True):
                    if tok == llm.token_eos():
                        break
                    new.append(tok)
                    if len(new) == req["max_new"]:
                        break
                out.append(new)
            answer = {"generated": out, "seconds": time.perf_counter() - start}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
