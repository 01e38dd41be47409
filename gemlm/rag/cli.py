"""``gemlm rag index`` and ``gemlm rag ask``. Light at import: models and Qdrant load inside."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="RAG with one model: index files into Qdrant, then retrieve and answer.",
)
console = Console(stderr=True)

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Qdrant collection name.")]
QdrantPathOpt = Annotated[
    Path | None,
    typer.Option(
        help="Local store folder, no server needed [default: $GEMLM_HOME/qdrant-edge, or "
        "$GEMLM_HOME/qdrant with --store local]."
    ),
]
StoreOpt = Annotated[
    Literal["edge", "local"],
    typer.Option(
        "--store",
        help="Local engine: edge (Qdrant Edge in-process: HNSW, on disk) or local "
        "(qdrant-client local mode, for folders built with it). Ignored with --qdrant-url.",
    ),
]
QdrantUrlOpt = Annotated[
    str | None, typer.Option(help="A Qdrant server or cluster URL instead of a local folder.")
]
ApiKeyOpt = Annotated[
    str | None, typer.Option(envvar="QDRANT_API_KEY", help="API key for --qdrant-url.")
]
DtypeOpt = Annotated[
    str, typer.Option(help="auto (bf16 where the CPU has it), float32 or bfloat16.")
]


def _fail(exc: BaseException, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(str(exc))}")
    return typer.Exit(code)


def _open_store(qdrant_path: Path | None, qdrant_url: str | None, api_key: str | None, store: str):
    from .store import RagError, RagStore

    try:
        return RagStore(path=qdrant_path, url=qdrant_url, api_key=api_key, engine=store)
    except (RagError, RuntimeError) as exc:  # a foreign or locked folder, an unknown engine
        raise _fail(exc) from exc


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(help=".txt, .md, .jsonl, SQuAD .json or folders.")],
    collection: CollectionOpt,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Embedding model.")] = None,
    dtype: DtypeOpt = "auto",
    chunk_tokens: Annotated[
        int | None, typer.Option(help="Tokens per passage [default: 256 or what fits].")
    ] = None,
    overlap: Annotated[
        int | None, typer.Option(help="Tokens shared by neighbours [default: chunk/8, <= 32].")
    ] = None,
    batch_size: int = 32,
    qdrant_path: QdrantPathOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    qdrant_api_key: ApiKeyOpt = None,
    store: StoreOpt = "edge",
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(
            help="local: embed in this process; ray: Ray actors, a local Ray or --address "
            "(pip install 'gemlm\\[ray]')."
        ),
    ] = "local",
    actors: Annotated[
        int | None,
        typer.Option(min=1, help="ray: model actors [default: cluster CPUs / threads per actor]."),
    ] = None,
    threads_per_actor: Annotated[
        int, typer.Option(min=1, help="ray: torch threads per actor.")
    ] = 1,
    address: Annotated[
        str | None,
        typer.Option(envvar="RAY_ADDRESS", help="ray: a running cluster; else a local Ray."),
    ] = None,
) -> None:
    """Split files into passages, embed them (encode_document) and store them in Qdrant."""
    from ..cli import load
    from ..sources import DEFAULT_MODEL
    from .indexing import index_paths
    from .store import RagError, model_id_for

    name = model or DEFAULT_MODEL
    m = load(name, dtype)
    with _open_store(qdrant_path, qdrant_url, qdrant_api_key, store) as db:
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
                raise _fail(exc) from exc
        for w in caught:
            if "skipping" in str(w.message) or "lines skipped" in str(w.message):
                console.print(f"[yellow]warning:[/yellow] {w.message}")
        total = db.count(collection) if db.exists(collection) else 0
    if report.passages == 0:
        raise _fail(ValueError("no readable text found in the given paths"))
    console.print(
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
    qdrant_api_key: ApiKeyOpt = None,
    store: StoreOpt = "edge",
) -> None:
    """Retrieve passages for a question and answer from them with citations (streamed)."""
    from ..cli import load
    from .ask import RagEngine
    from .store import RagError, model_id_for

    with _open_store(qdrant_path, qdrant_url, qdrant_api_key, store) as db:
        try:
            stored = db.identity(collection)
        except RagError as exc:
            raise _fail(exc) from exc
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
            raise _fail(exc) from exc
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
