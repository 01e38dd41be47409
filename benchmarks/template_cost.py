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
from dataclasses import asdict
from pathlib import Path

from benchmarks._common import REPORT_TASKS, RESULTS, md_table
from benchmarks.model_cost import encode_speed, quality, text_sets, write_report
from gemlm.model import GEMModel


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
    speed = encode_speed(models, text_sets(args.n, args.paragraphs), args.batch_size, args.rounds)
    for name in speed:  # the wrapper's time over the plain text's
        t = speed[name]
        t["wrapped_time_over_plain"] = round(t["wrapped"]["seconds"] / t["plain"]["seconds"], 3)
    scores = {
        "wrapped": quality(args.ablation, args.arms[0]),
        "plain": quality(args.ablation, args.arms[1]),
    }
    rows = [
        [
            k,
            *(f"{scores[k][t]:.1f}" for t in [*REPORT_TASKS, "mean"]),
            speed["sentences"][k]["tokens_per_text"],
            speed["sentences"][k]["texts_per_s"],
            speed["paragraphs"][k]["texts_per_s"],
        ]
        for k in models
    ]
    header = ["model", *REPORT_TASKS, "mean", "tokens/sentence", "sentences/s", "paragraphs/s"]
    notes = [
        f"wrapped / plain time: {speed['sentences']['wrapped_time_over_plain']}x on sentences, "
        f"{speed['paragraphs']['wrapped_time_over_plain']}x on paragraphs"
    ]
    record = {"what": "PromptEOL wrapper vs plain text + GEM token, same recipe otherwise"}
    record |= {"models": {"wrapped": args.wrapped, "plain": args.plain}}
    record |= {"formats": {k: asdict(f) for k, f in formats.items()}}
    write_report(
        args.out,
        "The PromptEOL wrapper: quality vs cost (report suite; encode speed side by side)",
        md_table(header, rows),
        notes,
        {
            **record,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "quality": scores,
            "speed": speed,
        },
    )


if __name__ == "__main__":
    main()
