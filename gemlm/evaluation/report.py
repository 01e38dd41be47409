"""results.json, a Markdown side-by-side table and a PNG bar chart from one ``evaluate`` run.

``out`` ending in ``.md`` writes ``<out>.md``, ``<out>.json``, ``<out>.png``; any other ``out`` is
a folder receiving ``results.json``, ``report.md`` and ``chart.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LOWER_IS_BETTER = {"perplexity"}


def output_paths(out: str | Path) -> tuple[Path, Path, Path]:
    out = Path(out)
    if out.suffix == ".md":
        return out.with_suffix(".json"), out, out.with_suffix(".png")
    return out / "results.json", out / "report.md", out / "chart.png"


def _rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(task, metric) in first-seen order across models."""
    seen: dict[str, str] = {}
    for per_model in results.values():
        for task, r in per_model.items():
            seen.setdefault(task, r["metric"])
    return list(seen.items())


def markdown(payload: dict[str, Any]) -> str:
    meta, results = payload["meta"], payload["results"]
    labels = list(results)
    lines = [
        f"# gemlm eval — suite `{meta['suite']}`",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"dtype {meta['dtype']}, {meta['torch_threads']} torch threads, data `{meta['data_dir']}`"
        + (f", **--limit {meta['limit']}**" if meta.get("limit") else "")
        + f"; total wall time {meta['seconds_total'] / 60:.1f} min.",
        "",
        "Embedding scores are mteb's main scores x100; MMLU/ARC accuracies in %; "
        "perplexity: lower is"
        " better. Base-LM generation metrics are computed once per causal LM and shared by its"
        " pooling"
        " variants (marked *).",
        "",
        "| task | metric | " + " | ".join(_headers(meta, labels)) + " |",
        "|---|---|" + "---:|" * len(labels),
    ]
    for task, metric in _rows(results):
        cells = []
        for label in labels:
            r = results[label].get(task)
            if r is None:
                cells.append("—")
            else:
                cells.append(f"{r['main']:.2f}" + ("*" if r.get("shared_with") else ""))
        lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
    lines += ["", "Wall time per model (s, shared generation metrics counted once):", ""]
    lines += ["| model | embedding | generation |", "|---|---:|---:|"]
    tasks_by_kind = _rows(results)
    for label in labels:
        emb = sum(r["seconds"] for t, r in results[label].items() if not _is_generation(t))
        gen = sum(
            r["seconds"]
            for t, r in results[label].items()
            if _is_generation(t) and not r.get("shared_with")
        )
        lines.append(f"| {label} | {emb:.0f} | {gen:.0f} |")
    del tasks_by_kind
    lines += ["", "Data (fixed seeded subsets; rows skipped; texts embedded per model):", ""]
    lines += [f"- **{k}**: {v}" for k, v in meta["subsets"].items()]
    lines += ["", "Models:", ""]
    lines += [
        f"- **{m['label']}**: `{_spec(m)}`"
        + (f", distilled from {m['distilled_from']}" if m.get("distilled_from") else "")
        for m in meta["models"]
    ]
    return "\n".join(lines) + "\n"


def _headers(meta: dict[str, Any], labels: list[str]) -> list[str]:
    """Column titles: a distilled GEM model says so (never read as a self-supervised result)."""
    teachers = {m["label"]: m.get("distilled_from") for m in meta.get("models", [])}
    return [f"{x} (distilled from {teachers[x]})" if teachers.get(x) else x for x in labels]


def _spec(model: dict[str, Any]) -> str:
    """The spec as given on the command line: ``kind:target`` plus ``@dims`` when truncated."""
    dims = model.get("dims")
    return f"{model['kind']}:{model['target']}" + (f"@{dims}" if dims else "")


def _is_generation(task: str) -> bool:
    return task.startswith(("MMLU", "ARC", "Wiki ppl"))


def chart(payload: dict[str, Any], path: Path) -> None:
    """Grouped horizontal bars of every score except perplexity (one colour per model)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = payload["results"]
    labels = list(results)
    rows = [(t, m) for t, m in _rows(results) if m not in LOWER_IS_BETTER]
    fig, ax = plt.subplots(figsize=(9, 1.5 + 0.28 * max(len(rows), 1) * max(len(labels), 1)))
    height = 0.8 / max(len(labels), 1)
    for k, label in enumerate(labels):
        ys = [i + k * height for i in range(len(rows))]
        xs = [results[label].get(t, {}).get("main", 0.0) for t, _ in rows]
        ax.barh(ys, xs, height=height, label=label)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], [f"{t} ({m})" for t, m in rows])
    ax.invert_yaxis()
    ax.set_xlabel("score (x100 / %)")
    ax.set_title(f"gemlm eval — {payload['meta']['suite']}")
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(payload: dict[str, Any], out: str | Path) -> tuple[Path, Path, Path]:
    json_path, md_path, png_path = output_paths(out)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(payload), encoding="utf-8")
    chart(payload, png_path)
    return json_path, md_path, png_path
