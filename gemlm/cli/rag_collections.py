"""``gemlm rag list`` and ``delete``: what a collection holds, and removing it or a source's
passages. Also :func:`open_store`, which every ``gemlm rag`` command opens its store with.
Light at import: Qdrant loads inside."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..rag.types import RagError
from .options import (
    CollectionOpt,
    QdrantApiKeyOpt,
    QdrantPathOpt,
    QdrantUrlOpt,
    StoreOpt,
    err_console,
    fail,
)

if TYPE_CHECKING:
    from ..rag.store import RagStore


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def open_store(
    qdrant_path: Path | None, qdrant_url: str | None, api_key: str | None, store: str
) -> RagStore:
    from ..rag.store import RagStore

    try:
        return RagStore(path=qdrant_path, url=qdrant_url, api_key=api_key, engine=store)
    except (RagError, RuntimeError) as exc:  # a foreign or locked folder, an unknown engine
        raise fail(exc, stderr=True) from exc


ListCollectionOpt = Annotated[
    str | None,
    typer.Option("--collection", "-c", help="List this collection's sources (default: all)."),
]


def list_(
    collection: ListCollectionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    qdrant_path: QdrantPathOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    qdrant_api_key: QdrantApiKeyOpt = None,
    store: StoreOpt = "edge",
) -> None:
    """List the collections (model, passages, sources), or one collection's sources."""
    with open_store(qdrant_path, qdrant_url, qdrant_api_key, store) as db:
        if collection is None:
            rows = [collection_row(db, name) for name in db.collections()]
            print_collections(db.location, rows, as_json)
            return
        try:
            row = collection_row(db, collection, strict=True)
        except RagError as exc:
            raise fail(exc, stderr=True) from exc
    print_sources(row, as_json)


def collection_row(db: RagStore, name: str, strict: bool = False) -> dict[str, Any]:
    """What a collection holds: model, dimension, passages and passages per source.

    A collection that cannot be read (damaged, open in another process) gives its error in
    ``error`` unless ``strict``, so one bad collection does not hide the others.
    """
    try:
        identity = db.identity(name)
        sources = db.sources(name)
        return {
            "collection": name,
            "model": identity.get("model"),
            "dimension": identity.get("dimension"),
            "passages": db.count(name),
            "sources": sources,
        }
    except RagError as exc:
        if strict:
            raise
        return {"collection": name, "error": str(exc)}


def print_collections(location: str, rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"location": location, "collections": rows}, indent=2) + "\n")
        return
    if not rows:
        err_console.print(f"no collections at {escape(location)}; build one with `gemlm rag index`")
        return
    table = Table(title=f"collections at {location}")
    for column in ("collection", "passages", "sources", "model"):
        table.add_column(column, justify="right" if column in ("passages", "sources") else "left")
    for r in rows:
        if "error" in r:
            table.add_row(r["collection"], "", "", f"[red]{escape(r['error'])}[/red]")
        else:
            table.add_row(
                r["collection"],
                f"{r['passages']:,}",
                f"{len(r['sources']):,}",
                escape(str(r["model"])),
            )
    Console().print(table)


def print_sources(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(row, indent=2) + "\n")
        return
    out = Console()
    out.print(
        f"[bold]{escape(row['collection'])}[/bold]: {row['passages']:,} passages from "
        f"{plural(len(row['sources']), 'source')}; model {escape(str(row['model']))} "
        f"(dimension {row['dimension']})",
        highlight=False,
    )
    table = Table(show_header=True)
    table.add_column("passages", justify="right")
    table.add_column("source")
    for source, n in row["sources"].items():
        table.add_row(f"{n:,}", escape(source))
    out.print(table)


def delete(
    collection: CollectionOpt,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            "-s",
            help="Delete this source's passages (a file as `gemlm rag list` shows it, or its "
            "path; repeatable). Without it: the whole collection, which needs --yes.",
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Confirm deleting the whole collection.")
    ] = False,
    qdrant_path: QdrantPathOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    qdrant_api_key: QdrantApiKeyOpt = None,
    store: StoreOpt = "edge",
) -> None:
    """Delete one or more sources' passages from a collection, or the whole collection."""
    with open_store(qdrant_path, qdrant_url, qdrant_api_key, store) as db:
        try:
            if source:
                delete_sources(db, collection, source)
            else:
                drop_collection(db, collection, yes)
        except RagError as exc:
            raise fail(exc, stderr=True) from exc


def match_sources(given: list[str], stored: dict[str, int], collection: str) -> list[str]:
    """The stored sources ``given`` names (as stored, or as a path); all of them or an error."""
    found, unknown = [], []
    for name in given:
        path = str(Path(name).expanduser().resolve())
        match = name if name in stored else path if path in stored else None
        (found if match else unknown).append(match or name)
    if unknown:
        raise RagError(
            f"collection {collection!r} has no passages from {', '.join(unknown)}; "
            f"`gemlm rag list -c {collection}` shows its sources (nothing was deleted)"
        )
    return list(dict.fromkeys(found))


def delete_sources(db: RagStore, collection: str, given: list[str]) -> None:
    sources = match_sources(given, db.sources(collection), collection)
    removed = sum(db.remove_source(collection, s) for s in sources)
    db.optimize(collection)
    err_console.print(
        f"[green]{escape(collection)}[/green]: removed {plural(removed, 'passage')} of "
        f"{plural(len(sources), 'source')}; {db.count(collection)} in the collection"
    )


def drop_collection(db: RagStore, collection: str, yes: bool) -> None:
    if not db.exists(collection):
        raise db.missing(collection)
    if not yes:
        try:
            held = f" and its {plural(db.count(collection), 'passage')}"
        except RagError:
            held = ""
        raise RagError(
            f"this deletes collection {collection!r}{held} at {db.location}: add --yes to "
            "confirm (or --source FILE to delete one source)"
        )
    db.drop(collection)
    err_console.print(f"deleted collection [green]{escape(collection)}[/green]")
