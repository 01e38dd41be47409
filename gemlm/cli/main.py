"""The ``gemlm`` app: every command, registered in the order ``gemlm --help`` lists them."""

from __future__ import annotations

import typer

from .embed import embed
from .eval import eval_cmd
from .models import chat_cmd, demo, generate, info, similarity
from .rag import app as rag_app
from .serve import serve
from .train import train

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="GEM: one LLM that embeds and generates."
)
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
