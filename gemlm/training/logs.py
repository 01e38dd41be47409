"""Training logs on disk: ``log.json`` (every logged row), ``log.csv`` and ``loss.png``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def write_logs(history: list[dict[str, Any]], out: Path) -> None:
    """``log.json``, ``log.csv`` and ``loss.png`` (one panel per logged loss part)."""
    rows = [r for r in history if "loss" in r]
    (out / "log.json").write_text(json.dumps(history, indent=1))
    keys = sorted({k for r in rows for k in r})
    with open(out / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [
        k
        for k in ("loss", "ntp", "contrastive", "accuracy", "logit_scale")
        if any(k in r for r in rows)
    ]
    if not parts:
        return
    fig, axes = plt.subplots(1, len(parts), figsize=(4 * len(parts), 3), squeeze=False)
    for ax, key in zip(axes[0], parts, strict=True):
        for stage in ("ntp", "contrastive"):
            pts = [(i, r[key]) for i, r in enumerate(rows) if key in r and r.get("stage") == stage]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=stage)
        ax.set_title(key)
        ax.set_xlabel("log step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=80)
    plt.close(fig)
