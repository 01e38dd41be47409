"""The ``gemlm`` app: every command, registered in the order ``gemlm --help`` lists them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from .. import __version__
from .embed import embed
from .eval import eval_cmd
from .models import chat_cmd, demo, generate, info, similarity
from .rag import app as rag_app
from .serve import serve
from .train import train

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="GEM: one LLM that embeds and generates."
)


def package_version() -> str:
    """The installed distribution's version (the package's own when run from a source tree)."""
    try:
        return version("gemlm")
    except PackageNotFoundError:  # pragma: no cover - not installed
        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gemlm {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """GEM: one LLM that embeds and generates."""


app.command()(info)
app.command()(embed)
app.command()(similarity)
app.command()(generate)
app.command("chat")(chat_cmd)
app.command()(demo)
app.command()(train)
app.command()(serve)
app.add_typer(rag_app, name="rag")
app.command("eval")(eval_cmd)


def main() -> None:  # pragma: no cover
    app()
