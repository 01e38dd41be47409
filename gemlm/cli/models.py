"""``gemlm info``, ``similarity``, ``generate``, ``chat`` and ``demo``: one model, in a terminal."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..sources import DEFAULT_MODEL, is_gemlm_folder, resolve
from .options import DtypeOpt, ModelOpt, console, load

DEMO_SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar on stage.",
    "The stock market fell sharply on Monday.",
    "Shares tumbled as investors panicked.",
    "A cat is sleeping on the sofa.",
]
DEMO_PARAPHRASES = ((0, 1), (2, 3))  # the other pairs of DEMO_SENTENCES are unrelated


def paraphrase_gap(sims: list[list[float]]) -> tuple[list[float], float]:
    """The demo's paraphrase similarities and the highest unrelated one (a trained embedder
    puts every paraphrase above every unrelated pair).

    >>> paraphrase_gap([[1, .9, .1, .2, .3], [.9, 1, .2, .1, .2], [.1, .2, 1, .8, .4],
    ...                 [.2, .1, .8, 1, .1], [.3, .2, .4, .1, 1]])
    ([0.9, 0.8], 0.4)
    """
    para = [sims[i][j] for i, j in DEMO_PARAPHRASES]
    n = len(sims)
    pairs = {(i, j) for i in range(n) for j in range(i + 1, n)} - set(DEMO_PARAPHRASES)
    return para, max(sims[i][j] for i, j in pairs)


TemperatureOpt = Annotated[
    float | None,
    typer.Option(min=0.0, help="0 is greedy. Default: the model's generation defaults."),
]
TopPOpt = Annotated[
    float | None, typer.Option(min=0.0, max=1.0, help="Default: the model's generation defaults.")
]
RepetitionPenaltyOpt = Annotated[
    float | None,
    typer.Option(help="> 1 discourages repeating tokens. Default: the model's, else 1 (off)."),
]

UNTRAINED_NOTE = (
    "[yellow]This is a base model: its GEM token was just added and is untrained, so these "
    "similarities mean little. The default model (`gemlm demo` with no --model) is a trained "
    "one; `make demo` then trains one of your own.[/yellow]"
)


def info(model: ModelOpt = DEFAULT_MODEL, dtype: DtypeOpt = "auto") -> None:
    """Show what a model is: architecture, size, GEM tokens, embedding dimension, and the
    sampling it generates with when none is asked for."""
    m = load(model, dtype)
    table = Table(title=f"gemlm model: {model}", show_header=False)
    for key, value in {**m.info(), "generation_defaults": m.generation_defaults}.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


def similarity(
    texts: Annotated[list[str], typer.Argument(help="Two or more texts.")],
    model: ModelOpt = DEFAULT_MODEL,
    dtype: DtypeOpt = "auto",
) -> None:
    """Print the cosine-similarity matrix of the texts."""
    m = load(model, dtype)
    print_similarity(texts, m.similarity(m.encode(texts), m.encode(texts)).tolist())


def print_similarity(texts: list[str], sims: list[list[float]]) -> None:
    table = Table(title="cosine similarity")
    table.add_column("")
    for i in range(len(texts)):
        table.add_column(str(i), justify="right")
    for i, (text, row) in enumerate(zip(texts, sims, strict=True)):
        label = f"{i}: {text[:40]}{'…' if len(text) > 40 else ''}"
        table.add_row(
            label, *[f"[bold]{s:.3f}[/bold]" if j != i else "-" for j, s in enumerate(row)]
        )
    console.print(table)


def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt.")],
    model: ModelOpt = DEFAULT_MODEL,
    dtype: DtypeOpt = "auto",
    chat: Annotated[bool, typer.Option(help="Apply the chat template (a user message).")] = True,
    max_new_tokens: int = 256,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    repetition_penalty: RepetitionPenaltyOpt = None,
    seed: int | None = None,
) -> None:
    """Generate a continuation (or a chat reply), streamed to the terminal."""
    m = load(model, dtype)
    for piece in m.stream(
        prompt,
        chat=chat,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        seed=seed,
    ):
        console.print(piece, end="", markup=False, highlight=False)
    console.print()


def chat_cmd(
    model: ModelOpt = DEFAULT_MODEL,
    dtype: DtypeOpt = "auto",
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    max_new_tokens: int = 512,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    repetition_penalty: RepetitionPenaltyOpt = None,
) -> None:
    """Chat interactively (empty line, 'exit' or Ctrl-D ends)."""
    m = load(model, dtype)
    messages = [{"role": "system", "content": system}] if system else []
    console.print(
        "[dim]chatting with[/dim] " + model + " [dim](empty line or Ctrl-D to quit)[/dim]"
    )
    while True:
        try:
            user = console.input("[bold cyan]you>[/bold cyan] ")
        except (EOFError, KeyboardInterrupt):
            break
        if user.strip() in ("", "exit", "quit"):
            break
        messages.append({"role": "user", "content": user})
        console.print("[bold green]gem>[/bold green] ", end="")
        reply = ""
        for piece in m.stream(
            messages,
            chat=True,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
        ):
            reply += piece
            console.print(piece, end="", markup=False, highlight=False)
        console.print()
        messages.append({"role": "assistant", "content": reply})


def demo(model: ModelOpt = DEFAULT_MODEL, dtype: DtypeOpt = "auto") -> None:
    """One model, both jobs: embed a few sentences, then answer a question."""
    m = load(model, dtype)
    console.rule(f"[bold]{model}[/bold]: {m.info()['parameters']:,} parameters, {m.dtype}")
    emb = m.encode(DEMO_SENTENCES)
    sims = m.similarity(emb, emb).tolist()
    print_similarity(DEMO_SENTENCES, sims)
    para, unrelated = paraphrase_gap(sims)
    console.print(
        f"paraphrases (0-1, 2-3): {', '.join(f'{s:.3f}' for s in para)}; "
        f"most similar unrelated pair: {unrelated:.3f}"
    )
    if not is_gemlm_folder(resolve(model)):  # a base model: its GEM token was just added
        console.print(UNTRAINED_NOTE)
    question = "What is the capital of France? Answer in one sentence."
    console.print(f"[bold cyan]question:[/bold cyan] {question}")
    console.print(f"[bold green]answer:[/bold green] {m.chat(question, max_new_tokens=48)}")
