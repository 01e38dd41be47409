"""``gemlm embed``: texts -> .npy or JSON lines here, or files -> Parquet parts with Ray."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..sources import DEFAULT_MODEL
from .options import (
    ActorsOpt,
    AddressOpt,
    DtypeOpt,
    EngineOpt,
    ModelOpt,
    console,
    fail,
    load,
    read_texts,
)


def embed(
    texts: Annotated[
        list[str] | None,
        typer.Argument(help="Texts to embed (with --engine ray: .txt/.jsonl files or folders)."),
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="A .txt (one text per line) or .jsonl file.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write .npy or .jsonl; default: JSONL to stdout. With --engine ray: a folder."
        ),
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    dtype: DtypeOpt = "auto",
    batch_size: int = 32,
    prompt_name: str | None = None,
    engine: EngineOpt = "local",
    actors: ActorsOpt = None,
    threads_per_actor: Annotated[
        int | None,
        typer.Option(min=1, help="ray: torch threads (= CPUs reserved) per actor (default: 1)."),
    ] = None,
    address: AddressOpt = None,
) -> None:
    """Embed texts to a .npy matrix or JSON lines ({"text", "embedding"}), or with --engine ray
    files to Parquet parts (id, text, vector) that a rerun completes."""
    if engine not in ("local", "ray"):
        raise fail(f"unknown --engine {engine!r}: use local or ray")
    if engine == "ray":
        inputs = [*(texts or []), *([str(file)] if file else [])]
        embed_ray(
            inputs, out, model, dtype, batch_size, prompt_name, actors, threads_per_actor, address
        )
        return
    if actors is not None or threads_per_actor is not None:
        raise fail("--actors and --threads-per-actor need --engine ray")
    items = read_texts(texts, file)
    m = load(model, dtype)
    emb = m.encode(
        items,
        batch_size=batch_size,
        prompt_name=prompt_name,
        show_progress_bar=len(items) > batch_size,
    )
    if out is not None and out.suffix == ".npy":
        import numpy as np

        np.save(out, emb)
    else:
        lines = (
            json.dumps({"text": t, "embedding": e.tolist()})
            for t, e in zip(items, emb, strict=True)
        )
        if out is None:
            sys.stdout.write("\n".join(lines) + "\n")
            return
        out.write_text("\n".join(lines) + "\n")
    console.print(f"wrote {emb.shape[0]} x {emb.shape[1]} embeddings to {out}", style="green")


def embed_ray(
    inputs: list[str],
    out: Path | None,
    model: str,
    dtype: str,
    batch_size: int,
    prompt_name: str | None,
    actors: int | None,
    threads_per_actor: int | None,
    address: str | None,
) -> None:
    """``gemlm embed --engine ray``: files -> Parquet parts in ``out`` (gemlm/distributed/)."""
    from ..distributed import EngineError, embed_files_ray, require_ray

    try:
        require_ray()
        if out is None:
            raise EngineError("--engine ray needs --out DIR (the folder for the Parquet parts)")
        report = embed_files_ray(
            model,
            inputs,
            out,
            dtype=dtype,
            prompt_name=prompt_name,
            actors=actors,
            threads_per_actor=threads_per_actor or 1,
            address=address,
            batch_size=batch_size,
            progress=True,
        )
    except EngineError as exc:
        raise fail(exc) from exc
    console.print(
        f"wrote {report.written:,} embeddings in {len(report.parts)} parts to {out} "
        f"({report.already_present:,} already there, {report.duplicates:,} duplicates skipped; "
        f"{report.actors} actors on {report.nodes} nodes, {report.timings['total_s']:.1f} s)",
        style="green",
        markup=False,
        highlight=False,
    )
