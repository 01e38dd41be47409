"""GEM models' quality beside their encode cost: report-suite rows from ablation JSONs, encode
speed side by side in one process (interleaved rounds, best kept).

Each ``--arm LABEL MODEL ABLATION ARM`` names a model folder and the row of a
``benchmarks.pair_ablation`` JSON that scored it. Every model embeds the same STS-B sentences
and SQuAD paragraphs through its own format (``encode``'s prompt, suffix and GEM token); the
first arm is the reference the others' time is divided by. Made for issue 22's Gemma-3-270M row:

    python -m benchmarks.model_cost \\
        --arm smollm2-135m runs/negatives/batch256/model \\
              benchmarks/results/negatives_ablation.json batch256 \\
        --arm gemma3-270m runs/gemma/gemma256/model benchmarks/results/gemma_row.json gemma256 \\
        [--n 300] [--paragraphs 60] [--rounds 2] [--out benchmarks/results/model_cost.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._common import (
    REPORT_TASKS,
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


def quality(ablation: Path, arm: str) -> dict[str, float]:
    """An arm's report-suite scores from a pair_ablation JSON (its mean added)."""
    row = json.loads(Path(ablation).read_text())["arms"][arm]
    scores = {t: row[t] for t in REPORT_TASKS if t in row}
    return {**scores, "mean": round(sum(scores.values()) / len(scores), 2)}


def encode_speed(
    models: Mapping[str, GEMModel],
    sets: Mapping[str, list[str]],
    batch_size: int = 32,
    rounds: int = 2,
) -> dict[str, dict[str, Any]]:
    """Per text set: each model's tokens per text, seconds, texts/s and tokens/s, and every
    model's time over the first's (``time_vs_<first>``), measured interleaved in one process."""
    first = next(iter(models))
    out: dict[str, dict[str, Any]] = {}
    for name, texts in sets.items():
        ids = {k: m.tokenize_for_embedding(texts)[0] for k, m in models.items()}
        runs = {k: partial(m.embed_ids, ids[k], batch_size=batch_size) for k, m in models.items()}
        seconds = best_of(runs, rounds)
        out[name] = {"texts": len(texts)}
        for k in models:
            tokens = sum(map(len, ids[k]))
            out[name][k] = {
                "tokens_per_text": round(tokens / len(texts), 1),
                **rates({k: seconds[k]}, len(texts), tokens)[k],
                f"time_vs_{first}": round(seconds[k] / seconds[first], 3),
            }
        print(name, out[name], flush=True)
    return out


def text_sets(sentences: int, paragraphs: int) -> dict[str, list[str]]:
    """STS-B test sentences and SQuAD dev paragraphs, the two lengths a user embeds."""
    return {"sentences": stsb_sentences(sentences), "paragraphs": squad_paragraphs(paragraphs)}


def write_report(
    out: Path, title: str, table: list[str], notes: list[str], record: dict[str, Any]
) -> None:
    """``record`` as JSON (the command added) and as markdown: the title, the command, the table
    and the notes; printed too."""
    lines = [f"# {title}", "", f"`{command_line()}`", "", *table, "", *notes]
    write_result(out, {"command": command_line(), **record}, markdown="\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--arm",
        nargs=4,
        action="append",
        required=True,
        metavar=("LABEL", "MODEL", "ABLATION", "ARM"),
        help="a model folder and its row in a pair_ablation JSON; the first is the reference",
    )
    ap.add_argument("--n", type=int, default=300, help="STS-B test sentences")
    ap.add_argument("--paragraphs", type=int, default=60, help="SQuAD dev paragraphs")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS / "model_cost.json")
    args = ap.parse_args()
    arms = {label: {"model": m, "ablation": abl, "arm": arm} for label, m, abl, arm in args.arm}
    if len(arms) < 2:
        raise SystemExit("give at least two --arm with different labels")
    models = {label: GEMModel.from_pretrained(a["model"]) for label, a in arms.items()}
    speed = encode_speed(models, text_sets(args.n, args.paragraphs), args.batch_size, args.rounds)
    scores = {label: quality(Path(a["ablation"]), a["arm"]) for label, a in arms.items()}
    first = next(iter(arms))
    rows = [
        [
            label,
            *(f"{scores[label][t]:.1f}" for t in [*REPORT_TASKS, "mean"]),
            f"{models[label].model.num_parameters() / 1e6:.0f}M",
            speed["sentences"][label]["texts_per_s"],
            f"{speed['sentences'][label][f'time_vs_{first}']}x",
            speed["paragraphs"][label]["texts_per_s"],
            f"{speed['paragraphs'][label][f'time_vs_{first}']}x",
        ]
        for label in arms
    ]
    header = ["model", *REPORT_TASKS, "mean", "parameters"]
    header += ["sentences/s", "sentence time", "paragraphs/s", "paragraph time"]
    notes = [
        f"time: each model's encode time over {first}'s on the same texts (best of "
        f"{args.rounds} interleaved rounds, batch {args.batch_size})."
    ]
    record = {"what": "report-suite quality beside encode cost, side by side in one process"}
    record |= {"arms": arms, "batch_size": args.batch_size, "rounds": args.rounds}
    write_report(
        args.out,
        "Quality (report suite) beside encode cost, measured side by side",
        md_table(header, rows),
        notes,
        {**record, "quality": scores, "speed": speed},
    )


if __name__ == "__main__":
    main()
