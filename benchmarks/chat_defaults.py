"""Which sampling should a chat request that names none get? Answers checked for a known fact.

Short factual questions, each asked ``--seeds`` times per setting on the default model; a reply
counts as right when it contains the expected word (case-insensitive), within ``--tokens`` new
tokens. Settings: greedy, and SmolLM2-Instruct's card advice (temperature 0.2, top-p 0.9), also
with llama.cpp's repeat penalty 1.1. Greedy is one answer, so it is asked once.

    python -m benchmarks.chat_defaults [--model smollm2-135m-instruct] [--seeds 10] [--tokens 24]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from gemlm.model import GEMModel
from gemlm.sources import BASE_MODEL

from ._common import RESULTS, command_line, md_table, write_result

QUESTIONS = [  # (question, a word every right answer contains)
    ("What is the capital of France?", "paris"),
    ("What is the largest planet in the solar system?", "jupiter"),
    ("Who wrote Romeo and Juliet?", "shakespeare"),
    ("What is the chemical symbol for water?", "h2o"),
    ("How many days are in a week?", "seven|7"),
]
SETTINGS: dict[str, dict[str, Any]] = {
    "greedy": {"temperature": 0.0},
    "card: T 0.2, top-p 0.9": {"temperature": 0.2, "top_p": 0.9},
    "card + repeat penalty 1.1": {"temperature": 0.2, "top_p": 0.9, "repetition_penalty": 1.1},
}


def right(reply: str, expected: str) -> bool:
    """Whether ``reply`` holds one of the ``|``-separated expected words.

    >>> right("The capital is Paris.", "paris"), right("Seven days.", "seven|7")
    (True, True)
    """
    return any(word in reply.lower() for word in expected.split("|"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=BASE_MODEL)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--out", default=str(RESULTS / "chat_defaults.json"))
    args = ap.parse_args()
    gem = GEMModel.from_pretrained(args.model)
    rows: dict[str, dict[str, Any]] = {}
    for name, sampling in SETTINGS.items():
        seeds = [None] if sampling["temperature"] == 0 else list(range(args.seeds))
        t0 = time.perf_counter()
        replies = {
            q: [gem.chat(q, max_new_tokens=args.tokens, seed=s, **sampling) for s in seeds]
            for q, _ in QUESTIONS
        }
        rows[name] = {
            "sampling": sampling,
            "right_pct": {
                q: 100 * sum(right(r, e) for r in replies[q]) / len(seeds) for q, e in QUESTIONS
            },
            "replies": replies,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        rows[name]["mean_right_pct"] = sum(rows[name]["right_pct"].values()) / len(QUESTIONS)
        print(name, rows[name]["right_pct"], flush=True)
    table = md_table(
        ["setting", *(q for q, _ in QUESTIONS), "mean"],
        [
            [n, *(f"{r['right_pct'][q]:.0f}" for q, _ in QUESTIONS), f"{r['mean_right_pct']:.0f}"]
            for n, r in rows.items()
        ],
    )
    md = "\n".join(
        [
            "# Chat without sampling settings: % of replies with the right fact",
            "",
            f"`{command_line()}` — model {args.model}, {args.seeds} seeds per sampled setting, "
            f"<= {args.tokens} new tokens.",
            "",
            *table,
        ]
    )
    write_result(
        args.out,
        {"model": args.model, "seeds": args.seeds, "tokens": args.tokens, "settings": rows},
        markdown=md + "\n",
        with_torch=True,
    )
    print(md)


if __name__ == "__main__":
    main()
