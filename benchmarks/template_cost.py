"""The PromptEOL wrapper's cost and worth (issue 25 item 4): two GEM models trained alike, one with
the wrapper ``This sentence : "<text>" means in one word:"`` around each text, one on the plain
text; encode speed side by side in one process, quality from their report-suite rows.

Speed: each model embeds the same texts through its own format (``encode``: its prompt, its
suffix, its GEM token), interleaved over rounds (best kept), on STS-B sentences and SQuAD
paragraphs, with the tokens each model runs per text. Quality: the two arms' rows of
``--ablation`` (``benchmarks.pair_ablation``'s JSON, e.g. ``template_ablation.json``).

    python -m benchmarks.template_cost --wrapped runs/negatives/batch256/model \\
        --plain runs/negatives/plain256/model [--n 600] [--paragraphs 120] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from functools import partial
from pathlib import Path

from benchmarks._common import (
    RESULTS,
    best_of,
    command_line,
    md_table,
    rates,
    squad_paragraphs,
    stsb_sentences,
    write_result,
)
from gemlm.model import GEMModel

TASKS = ["STSBenchmark", "Banking77", "Emotion", "SciFact", "SQuADRetrieval"]


def quality(ablation: Path, arm: str) -> dict[str, float]:
    """An arm's report-suite scores from a pair_ablation JSON (its mean added)."""
    row = json.loads(ablation.read_text())["arms"][arm]
    scores = {t: row[t] for t in TASKS if t in row}
    return {**scores, "mean": round(sum(scores.values()) / len(scores), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wrapped", required=True, help="the model trained with the wrapper")
    ap.add_argument("--plain", required=True, help="the model trained on plain text")
    ap.add_argument("--ablation", type=Path, default=RESULTS / "template_ablation.json")
    ap.add_argument("--arms", nargs=2, default=["batch256", "plain256"], metavar=("W", "P"))
    ap.add_argument("--n", type=int, default=600, help="STS-B test sentences")
    ap.add_argument("--paragraphs", type=int, default=120, help="SQuAD dev paragraphs")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "template_cost.json")
    args = ap.parse_args()
    models = {"wrapped": GEMModel.from_pretrained(args.wrapped)}
    models["plain"] = GEMModel.from_pretrained(args.plain)
    formats = {k: m.config.embedding_format for k, m in models.items()}
    if formats["plain"].prompt() or formats["plain"].readout_suffix:
        raise SystemExit(f"--plain {args.plain} has a prompt or suffix: {formats['plain']}")
    sets = {"sentences": stsb_sentences(args.n), "paragraphs": squad_paragraphs(args.paragraphs)}
    speed: dict[str, dict] = {}
    for name, texts in sets.items():
        ids = {k: m.tokenize_for_embedding(texts)[0] for k, m in models.items()}
        runs = {
            k: partial(m.embed_ids, ids[k], batch_size=args.batch_size) for k, m in models.items()
        }
        seconds = best_of(runs, args.rounds)
        speed[name] = {
            "texts": len(texts),
            **{
                k: {
                    "tokens_per_text": round(sum(map(len, ids[k])) / len(texts), 1),
                    **rates({k: seconds[k]}, len(texts), sum(map(len, ids[k])))[k],
                }
                for k in models
            },
            "wrapped_time_over_plain": round(seconds["wrapped"] / seconds["plain"], 3),
        }
        print(name, speed[name], flush=True)
    scores = {
        "wrapped": quality(args.ablation, args.arms[0]),
        "plain": quality(args.ablation, args.arms[1]),
    }
    rows = [
        [
            k,
            *(f"{scores[k][t]:.1f}" for t in [*TASKS, "mean"]),
            speed["sentences"][k]["tokens_per_text"],
            speed["sentences"][k]["texts_per_s"],
            speed["paragraphs"][k]["texts_per_s"],
        ]
        for k in models
    ]
    header = ["model", *TASKS, "mean", "tokens/sentence", "sentences/s", "paragraphs/s"]
    lines = [
        "# The PromptEOL wrapper: quality vs cost (report suite; encode speed side by side)",
        "",
        f"`{command_line()}`",
        "",
        *md_table(header, rows),
        "",
        f"wrapped / plain time: {speed['sentences']['wrapped_time_over_plain']}x on sentences, "
        f"{speed['paragraphs']['wrapped_time_over_plain']}x on paragraphs",
    ]
    write_result(
        args.out,
        {
            "what": "PromptEOL wrapper vs plain text + GEM token, same recipe otherwise",
            "command": command_line(),
            "models": {"wrapped": args.wrapped, "plain": args.plain},
            "formats": {k: asdict(f) for k, f in formats.items()},
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "quality": scores,
            "speed": speed,
        },
        markdown="\n".join(lines) + "\n",
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
