"""``gemlm rag index`` and ``gemlm rag ask``. Light at import: models and Qdrant load inside."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="RAG with one model: index files into Qdrant, then retrieve and answer.",
)
console = Console(stderr=True)

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Qdrant collection name.")]
QdrantPathOpt = Annotated[
    Path | None,
    typer.Option(help="Local Qdrant folder (default $GEMLM_HOME/qdrant); no server needed."),
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
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code)


def _open_store(qdrant_path: Path | None, qdrant_url: str | None, api_key: str | None):
    from .store import RagStore

    try:
        return RagStore(path=qdrant_path, url=qdrant_url, api_key=api_key)
    except RuntimeError as exc:  # e.g. the local folder is locked by another process
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
) -> None:
    """Split files into passages, embed them (encode_document) and store them in Qdrant."""
    from ..cli import load
    from ..sources import DEFAULT_MODEL
    from .indexing import index_paths
    from .store import RagError, model_id_for

    name = model or DEFAULT_MODEL
    m = load(name, dtype)
    with _open_store(qdrant_path, qdrant_url, qdrant_api_key) as store:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                report = index_paths(
                    m,
                    store,
                    collection,
                    list(paths),
                    model_id=model_id_for(name),
                    chunk_tokens=chunk_tokens,
                    overlap=overlap,
                    batch_size=batch_size,
                    progress=True,
                )
            except (RagError, ValueError) as exc:
                raise _fail(exc) from exc
        for w in caught:
            if "skipping" in str(w.message) or "lines skipped" in str(w.message):
                console.print(f"[yellow]warning:[/yellow] {w.message}")
        total = store.count(collection) if store.exists(collection) else 0
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
) -> None:
    """Retrieve passages for a question and answer from them with citations (streamed)."""
    from ..cli import load
    from .ask import RagEngine
    from .store import RagError, model_id_for

    with _open_store(qdrant_path, qdrant_url, qdrant_api_key) as store:
        try:
            stored = store.identity(collection)
        except RagError as exc:
            raise _fail(exc) from exc
        name = model or stored["model"]
        m = load(name, dtype)
        try:
            engine = RagEngine(
                m, store, collection, model_id=model_id_for(name), top_k=top_k, reuse=reuse
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
