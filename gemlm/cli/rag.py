"""``gemlm rag index`` and ``gemlm rag ask``. Light at import: models and Qdrant load inside.

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

if TYPE_CHECKING:
    from ..rag.store import RagStore

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="RAG with one model: index files into Qdrant, then retrieve and answer.",
)


def open_store(
    qdrant_path: Path | None, qdrant_url: str | None, api_key: str | None, store: str
) -> RagStore:
    from ..rag.store import RagError, RagStore

    try:
        return RagStore(path=qdrant_path, url=qdrant_url, api_key=api_key, engine=store)
    except (RagError, RuntimeError) as exc:  # a foreign or locked folder, an unknown engine
        raise fail(exc, stderr=True) from exc


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(help=".txt, .md, .jsonl, SQuAD .json or folders.")],
    collection: CollectionOpt,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Embedding model.")] = None,
    dtype: DtypeOpt = "auto",
    chunk_tokens: Annotated[
        int | None, typer.Option(help="Tokens per passage (default: 256 or what fits).")
    ] = None,
    overlap: Annotated[
        int | None, typer.Option(help="Tokens shared by neighbours (default: chunk/8, <= 32).")
    ] = None,
    batch_size: int = 32,
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
    """Split files into passages, embed them (encode_document) and store them in Qdrant."""
    from ..rag.indexing import index_paths
    from ..rag.store import RagError, model_id_for
    from ..sources import DEFAULT_MODEL

    name = model or DEFAULT_MODEL
    m = load(name, dtype)
    with open_store(qdrant_path, qdrant_url, qdrant_api_key, store) as db:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            common = dict(
                model_id=model_id_for(name),
                chunk_tokens=chunk_tokens,
                overlap=overlap,
                batch_size=batch_size,
                progress=True,
            )
            try:
                if engine == "ray":
                    from ..distributed import index_paths_ray

                    report = index_paths_ray(
                        name,
                        db,
                        collection,
                        list(paths),
                        actors=actors,
                        threads_per_actor=threads_per_actor,
                        address=address,
                        dtype=dtype,
                        model=m,
                        **common,
                    )
                else:
                    report = index_paths(m, db, collection, list(paths), **common)
            except (RagError, ValueError) as exc:
                raise fail(exc, stderr=True) from exc
        for w in caught:
            if "skipping" in str(w.message) or "lines skipped" in str(w.message):
                err_console.print(f"[yellow]warning:[/yellow] {w.message}")
        total = db.count(collection) if db.exists(collection) else 0
    if report.passages == 0:
        raise fail("no readable text found in the given paths", stderr=True)
    err_console.print(
        f"[green]{collection}[/green]: {report.files} files, {report.passages} passages "
        f"({report.added} added, {report.already_present} already present, "
        f"{report.removed} stale removed); {total} in the collection"
    )


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
    max_new_tokens: int = 256,
    temperature: float = 0.0,
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
    from ..rag.store import RagError, model_id_for

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
                question, max_new_tokens=max_new_tokens, temperature=temperature
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
