"""Why server embedding throughput trails offline ``encode``: padding, counted (tokenizer only).

Offline ``encode`` sorts the whole text pool by length before cutting batches of 32, so a batch
holds texts of nearly equal length. A padding server can only sort within a micro-batch of
requests as they arrive (<= 64 texts, random order): its batches of 32 span more lengths and
pad more.
This counts the padded tokens of both schemes on the text pool ``serve_load.py`` uses (the
model input ids incl. the readout tail) and gives the throughput ratio padding alone allows;
and the same for the server's packed micro-batches (``gemlm/packing.py``, rows of 64 tokens;
this count leaves out the wider attention of a packed row).

    python -m benchmarks.serve_padding [--model smollm2-135m-instruct] [--micro-batch 64]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from benchmarks._common import RESULTS, text_pool, write_result


def padded(lengths: list[int], batch_size: int) -> int:
    """Tokens computed when ``lengths`` are sorted and cut into padded batches.

    >>> padded([3, 1, 2, 2], 2)  # [3, 2] -> 3 x 2, [2, 1] -> 2 x 2
    10
    """
    s = sorted(lengths, reverse=True)
    return sum(s[i] * len(s[i : i + batch_size]) for i in range(0, len(s), batch_size))


def packed(lengths: list[int], row_tokens: int) -> int:
    """Tokens computed when ``lengths`` are packed into rows (``gemlm.packing.first_fit``).

    >>> packed([3, 1, 2, 2], 4)  # [3, 1], [2, 2] -> 2 rows of 4
    8
    """
    from gemlm.packing import first_fit

    width = max(row_tokens, *lengths)
    return width * len(first_fit(lengths, width))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--pool", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--micro-batch", type=int, default=64)
    ap.add_argument("--row-tokens", type=int, default=64, help="packed rows (the server's)")
    ap.add_argument("--shuffles", type=int, default=8)
    ap.add_argument("--out", type=Path, default=RESULTS / "serve_padding.json")
    args = ap.parse_args()

    from gemlm.model import GEMModel

    gem = GEMModel.from_pretrained(args.model)
    ids, _ = gem.tokenize_for_embedding(text_pool(args.pool))
    lengths = [len(x) for x in ids]
    real = sum(lengths)
    offline = padded(lengths, args.batch_size)
    rng = random.Random(0)
    server = server_packed = 0
    for _ in range(args.shuffles):
        order = rng.sample(lengths, len(lengths))
        micro = [order[i : i + args.micro_batch] for i in range(0, len(order), args.micro_batch)]
        server += sum(padded(m, args.batch_size) for m in micro)
        server_packed += sum(packed(m, args.row_tokens) for m in micro)
    server /= args.shuffles
    server_packed /= args.shuffles
    report = {
        "model": args.model,
        "texts": len(lengths),
        "real_tokens": real,
        "offline_padded_tokens": offline,
        "server_padded_tokens_mean": server,
        "offline_padding_overhead": round(offline / real - 1, 3),
        "server_padding_overhead": round(server / real - 1, 3),
        "throughput_ratio_bound_from_padding": round(offline / server, 3),
        "row_tokens": args.row_tokens,
        "server_packed_tokens_mean": server_packed,
        "server_packed_padding_overhead": round(server_packed / real - 1, 3),
        "packed_throughput_ratio_bound_from_padding": round(offline / server_packed, 3),
    }
    print(json.dumps(write_result(args.out, report), indent=2))


if __name__ == "__main__":
    main()
