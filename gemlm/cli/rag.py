"""``gemlm rag index``, ``ask``, ``list`` and ``delete``. Light at import: models and Qdrant
load inside.

Messages go to stderr (``err_console``) so that ``ask --json`` leaves stdout to the JSON.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from ..rag.types import RagError
from ..sources import DEFAULT_MODEL
from .options import (
    ActorsOpt,
    AddressOpt,
    CollectionOpt,
    DtypeOpt,
    QdrantApiKeyOpt,
    QdrantPathOpt,
    QdrantUrlOpt,
    StoreOpt,
    err_console,
    fail,
    load,
)
from .rag_collections import delete, list_, open_store, plural

if TYPE_CHECKING:
    from ..rag.indexing import IndexInputs, IndexReport
    from ..rag.store import RagStore

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="RAG with one model: index files into Qdrant, then retrieve and answer.",
)


def read_index_inputs(paths: list[Path], skip_missing: bool, keep_missing: bool) -> IndexInputs:
    """The files to index, read before any model loads; their warnings printed, errors exit."""
    from ..rag.indexing import MissingPaths, read_inputs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            inputs = read_inputs(paths, skip_missing=skip_missing, keep_missing=keep_missing)
        except MissingPaths as exc:
            hint = "; check the path, or pass --skip-missing to index the others"
            raise fail(f"{exc}{hint}", stderr=True) from exc
    for w in caught:
        err_console.print(f"[yellow]warning:[/yellow] {escape(str(w.message))}")
    return inputs


def index_model(db: RagStore, collection: str, model: str | None) -> str:
    """``--model``, else the model the collection was built with, else the default alias."""
    if model:
        return model
    if not db.exists(collection):
        return DEFAULT_MODEL
    try:
        name = db.identity(collection).get("model")
    except RagError as exc:
        raise fail(exc, stderr=True) from exc
    if not name:
        raise fail(f"collection {collection!r} records no model: pass --model", stderr=True)
    err_console.print(f"[dim]model: {escape(str(name))} (the collection's)[/dim]")
    return str(name)


def forgot(report: IndexReport) -> bool:
    """Whether the run removed passages (of edited, emptied or gone files)."""
    return bool(report.removed or (report.gone_passages and not report.keep_missing))


def no_text(report: IndexReport) -> typer.Exit:
    """The error for a run that found nothing to index (and changed nothing)."""
    extra = "; ".join(filter(None, report_notes(report)))
    return fail(
        "no readable text found in the given paths" + (f" ({extra})" if extra else ""), stderr=True
    )


def named(paths: list[str], limit: int = 5) -> str:
    """``a, b, c`` (`` and N more`` past ``limit``)."""
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def report_notes(report: IndexReport) -> list[str]:
    """One line each for gone files, empty files, unreadable files and missing paths."""
    notes = []
    if report.gone_files:
        verb = "kept" if report.keep_missing else "removed"
        why = " (--keep-missing)" if report.keep_missing else ""
        notes.append(
            f"{verb} {plural(report.gone_passages, 'passage')} of "
            f"{plural(len(report.gone_files), 'file')} no longer present{why}: "
            + named(report.gone_files)
        )
    if report.empty:
        notes.append(f"{plural(len(report.empty), 'empty file')} (no text): {named(report.empty)}")
    if report.skipped:
        notes.append(
            f"skipped {plural(len(report.skipped), 'unreadable file')}: {named(report.skipped)}"
        )
    if report.missing:
        notes.append(
            f"skipped {plural(len(report.missing), 'missing path')}: {named(report.missing)}"
        )
    return notes


def print_summary(collection: str, report: IndexReport, total: int) -> None:
    err_console.print(
        f"[green]{escape(collection)}[/green]: {report.files} files, {report.passages} passages "
        f"({report.added} added, {report.already_present} already present, "
        f"{report.removed} stale removed); {total} in the collection"
    )
    for note in report_notes(report):
        err_console.print(escape(note))


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(help=".txt, .md, .jsonl, SQuAD .json or folders.")],
    collection: CollectionOpt,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Embedding model (default: the collection's model; for a new one, the default).",
        ),
    ] = None,
    dtype: DtypeOpt = "auto",
    chunk_tokens: Annotated[
        int | None, typer.Option(help="Tokens per passage (default: 256 or what fits).")
    ] = None,
    overlap: Annotated[
        int | None, typer.Option(help="Tokens shared by neighbours (default: chunk/8, <= 32).")
    ] = None,
    batch_size: int = 32,
    skip_missing: Annotated[
        bool, typer.Option(help="Index the paths that exist instead of stopping at a missing one.")
    ] = False,
    keep_missing: Annotated[
        bool,
        typer.Option(
            help="Keep the passages of files gone from the indexed folders (default: remove)."
        ),
    ] = False,
    qdrant_path: QdrantPathOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    qdrant_api_key: QdrantApiKeyOpt = None,
    store: StoreOpt = "edge",
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(
            help="local: embed in this process; ray: Ray actors, a local Ray or --address "
            "(pip install 'gemlm\\[ray]')."
        ),
    ] = "local",
    actors: ActorsOpt = None,
    threads_per_actor: Annotated[
        int, typer.Option(min=1, help="ray: torch threads per actor.")
    ] = 1,
    address: AddressOpt = None,
) -> None:
    """Split files into passages, embed them (encode_document) and store them in Qdrant.

    Files are read before the model loads. Re-indexing a folder also removes the passages of its
    files that are gone (--keep-missing keeps them); a file emptied loses its passages.
    """
    from ..rag.indexing import finish_index, index_paths, start_report
    from ..rag.store import model_id_for

    inputs = read_index_inputs(paths, skip_missing, keep_missing)
    with open_store(qdrant_path, qdrant_url, qdrant_api_key, store) as db:
        exists = db.exists(collection)
        if not inputs.documents and not exists:
            raise no_text(start_report(inputs))
        try:
            if not inputs.documents:  # nothing to embed, so no model: only passages to forget
                report = start_report(inputs)
                finish_index(db, collection, {}, report)
            else:
                name = index_model(db, collection, model)
                m = load(name, dtype)
                common = dict(
                    model_id=model_id_for(name),
                    chunk_tokens=chunk_tokens,
                    overlap=overlap,
                    batch_size=batch_size,
                    progress=True,
                )
                if engine == "ray":
                    from ..distributed import index_paths_ray

                    report = index_paths_ray(
                        name,
                        db,
                        collection,
                        inputs,
                        actors=actors,
                        threads_per_actor=threads_per_actor,
                        address=address,
                        dtype=dtype,
                        model=m,
                        **common,
                    )
                else:
                    report = index_paths(m, db, collection, inputs, **common)
        except (RagError, ValueError) as exc:
            raise fail(exc, stderr=True) from exc
        total = db.count(collection) if db.exists(collection) else 0
    if not report.passages and not forgot(report):
        raise no_text(report)
    print_summary(collection, report, total)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    collection: CollectionOpt,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Passages to retrieve.")] = 4,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Default: the model the collection was built with."),
    ] = None,
    dtype: DtypeOpt = "auto",
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Answer budget (default: a brief answer's, 96).")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Default: the model's generation defaults (gemlm info).")
    ] = None,
    top_p: Annotated[float | None, typer.Option(help="Default: the model's.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed a sampled answer.")] = None,
    reuse: Annotated[
        bool,
        typer.Option(
            help="Embed the question in the forward that starts the prefill (KV reuse; exact, "
            "but slower than a separate query forward on CPU: benchmarks/rag_reuse.py)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    qdrant_path: QdrantPathOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    qdrant_api_key: QdrantApiKeyOpt = None,
    store: StoreOpt = "edge",
) -> None:
    """Retrieve passages for a question and answer from them with citations (streamed)."""
    from ..rag.ask import RagEngine
    from ..rag.store import model_id_for

    with open_store(qdrant_path, qdrant_url, qdrant_api_key, store) as db:
        try:
            stored = db.identity(collection)
        except RagError as exc:
            raise fail(exc, stderr=True) from exc
        name = model or stored["model"]
        m = load(name, dtype)
        try:
            engine = RagEngine(
                m, db, collection, model_id=model_id_for(name), top_k=top_k, reuse=reuse
            )
            stream = engine.ask_stream(
                question,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
            )
        except (RagError, ValueError) as exc:
            raise fail(exc, stderr=True) from exc
        if as_json:
            result = stream.result()
            sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")
            return
        out = Console()
        for piece in stream:
            out.print(piece, end="", markup=False, highlight=False)
        out.print()
        out.print("[bold]sources[/bold]")
        for s in stream.sources:
            where = f"{s.source}" + (f" ({s.title})" if s.title else "") + f" #{s.chunk}"
            out.print(f"[{s.rank}] {s.score:.3f} {where}", markup=False, highlight=False)


app.command("list")(list_)
app.command()(delete)
