"""``gemlm train``: GEM post-training from a YAML recipe and key=value overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..sources import ModelSourceError
from .options import console, fail


def train(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value settings over the config.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="A YAML recipe.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoints.")] = False,
    help_config: Annotated[bool, typer.Option(help="List every setting and exit.")] = False,
) -> None:
    """GEM post-training: mixed NTP then contrastive; writes gemlm + sentence-transformers."""
    from ..training.config import GEMTrainingConfig

    if help_config:
        table = Table("setting", "default", "help", title="GEMTrainingConfig")
        for row in GEMTrainingConfig.help_table():
            table.add_row(*row)
        console.print(table)
        return
    try:
        cfg = GEMTrainingConfig.from_yaml(config, overrides)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise fail(exc) from exc
    from ..training.run import train as run_training

    try:
        summary = run_training(cfg, resume=resume)
    except (
        ValueError,
        FileNotFoundError,
        FileExistsError,
        ModelSourceError,
        FloatingPointError,
    ) as exc:
        raise fail(exc, code=1) from exc
    table = Table("metric", "before", "after", title=f"GEM training: {cfg.output_dir}")
    for key in summary.get("after", {}):
        table.add_row(key, str(summary.get("before", {}).get(key, "")), str(summary["after"][key]))
    console.print(table)
    console.print(f"model: {summary.get('model')}  ({summary.get('train_minutes')} min)")
