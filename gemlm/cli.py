"""The ``gemlm`` command line: one thin function per command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .sources import DEFAULT_MODEL, ModelSourceError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="GEM: one LLM that embeds and generates."
)
console = Console()

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="gemlm/HF folder, .gguf file, alias or hub id.")
]
DtypeOpt = Annotated[
    str, typer.Option(help="auto (bf16 where the CPU has it), float32 or bfloat16.")
]


def load(model: str, dtype: str = "auto", **kwargs):
    """Load a model with a spinner; turn source errors into one clear line and exit code 2."""
    from transformers.utils import logging as hf_logging

    from .model import GEMModel

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with console.status(f"loading {model}"):
            return GEMModel.from_pretrained(model, dtype=dtype, **kwargs)
    except (ModelSourceError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def read_texts(texts: list[str] | None, file: Path | None) -> list[str]:
    """Texts from arguments, or from a file: .jsonl (a "text" field) or one text per line."""
    out = list(texts or [])
    if file is not None:
        if not file.is_file():
            console.print(f"[red]error:[/red] no such file: {file}")
            raise typer.Exit(2)
        lines = file.read_text(encoding="utf-8").splitlines()
        if file.suffix == ".jsonl":
            out += [json.loads(line)["text"] for line in lines if line.strip()]
        else:
            out += [line for line in lines if line.strip()]
    if not out:
        console.print("[red]error:[/red] give texts as arguments or with --file")
        raise typer.Exit(2)
    return out


@app.command()
def info(model: ModelOpt = DEFAULT_MODEL, dtype: DtypeOpt = "auto") -> None:
    """Show what a model is: architecture, size, GEM tokens, embedding dimension."""
    m = load(model, dtype)
    table = Table(title=f"gemlm model: {model}", show_header=False)
    for key, value in m.info().items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


EngineOpt = Annotated[
    str,
    typer.Option(
        help="local: this process. ray: input files -> Parquet parts in the --out folder, "
        "one model per Ray actor, resumable (pip install 'gemlm\\[ray]')."
    ),
]


@app.command()
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
    actors: Annotated[
        int | None,
        typer.Option(min=1, help="ray: model actors (default: cluster CPUs / threads per actor)."),
    ] = None,
    threads_per_actor: Annotated[
        int | None,
        typer.Option(min=1, help="ray: torch threads (= CPUs reserved) per actor (default: 1)."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            envvar="RAY_ADDRESS", help="ray: a running cluster (ray start --head); else local."
        ),
    ] = None,
) -> None:
    """Embed texts to a .npy matrix or JSON lines ({"text", "embedding"}), or with --engine ray
    files to Parquet parts (id, text, vector) that a rerun completes."""
    if engine not in ("local", "ray"):
        console.print(f"[red]error:[/red] unknown --engine {engine!r}: use local or ray")
        raise typer.Exit(2)
    if engine == "ray":
        inputs = [*(texts or []), *([str(file)] if file else [])]
        embed_ray(
            inputs, out, model, dtype, batch_size, prompt_name, actors, threads_per_actor, address
        )
        return
    if actors is not None or threads_per_actor is not None:
        console.print("[red]error:[/red] --actors and --threads-per-actor need --engine ray")
        raise typer.Exit(2)
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
    from rich.markup import escape

    from .distributed import EngineError, embed_files_ray, require_ray

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
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    console.print(
        f"wrote {report.written:,} embeddings in {len(report.parts)} parts to {out} "
        f"({report.already_present:,} already there, {report.duplicates:,} duplicates skipped; "
        f"{report.actors} actors on {report.nodes} nodes, {report.timings['total_s']:.1f} s)",
        style="green",
        markup=False,
        highlight=False,
    )


@app.command()
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


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt.")],
    model: ModelOpt = DEFAULT_MODEL,
    dtype: DtypeOpt = "auto",
    chat: Annotated[bool, typer.Option(help="Apply the chat template (a user message).")] = True,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
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
        seed=seed,
    ):
        console.print(piece, end="", markup=False, highlight=False)
    console.print()


@app.command("chat")
def chat_cmd(
    model: ModelOpt = DEFAULT_MODEL,
    dtype: DtypeOpt = "auto",
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    max_new_tokens: int = 512,
    temperature: float = 0.0,
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
            messages, chat=True, max_new_tokens=max_new_tokens, temperature=temperature
        ):
            reply += piece
            console.print(piece, end="", markup=False, highlight=False)
        console.print()
        messages.append({"role": "assistant", "content": reply})


DEMO_SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar on stage.",
    "The stock market fell sharply on Monday.",
    "Shares tumbled as investors panicked.",
    "A cat is sleeping on the sofa.",
]


@app.command()
def demo(model: ModelOpt = DEFAULT_MODEL, dtype: DtypeOpt = "auto") -> None:
    """One model, both jobs: embed a few sentences, then answer a question."""
    m = load(model, dtype)
    console.rule(f"[bold]{model}[/bold]: {m.info()['parameters']:,} parameters, {m.dtype}")
    emb = m.encode(DEMO_SENTENCES)
    print_similarity(DEMO_SENTENCES, m.similarity(emb, emb).tolist())
    question = "What is the capital of France? Answer in one sentence."
    console.print(f"[bold cyan]question:[/bold cyan] {question}")
    console.print(f"[bold green]answer:[/bold green] {m.chat(question, max_new_tokens=48)}")


@app.command()
def train(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value settings over the config.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="A YAML recipe.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoints.")] = False,
    help_config: Annotated[bool, typer.Option(help="List every setting and exit.")] = False,
) -> None:
    """GEM post-training: mixed NTP then contrastive; writes gemlm + sentence-transformers."""
    from .training.config import GEMTrainingConfig

    if help_config:
        table = Table("setting", "default", "help", title="GEMTrainingConfig")
        for row in GEMTrainingConfig.help_table():
            table.add_row(*row)
        console.print(table)
        return
    try:
        cfg = GEMTrainingConfig.from_yaml(config, overrides)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    from .training.run import train as run_training

    try:
        summary = run_training(cfg, resume=resume)
    except (
        ValueError,
        FileNotFoundError,
        FileExistsError,
        ModelSourceError,
        FloatingPointError,
    ) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table("metric", "before", "after", title=f"GEM training: {cfg.output_dir}")
    for key in summary.get("after", {}):
        table.add_row(key, str(summary.get("before", {}).get(key, "")), str(summary["after"][key]))
    console.print(table)
    console.print(f"model: {summary.get('model')}  ({summary.get('train_minutes')} min)")


@app.command()
def serve(
    model: ModelOpt = DEFAULT_MODEL,
    dtype: DtypeOpt = "auto",
    host: Annotated[str, typer.Option(help="Bind address (loopback unless told).")] = "127.0.0.1",
    port: int = 8000,
    api_key: Annotated[
        str | None, typer.Option(envvar="GEMLM_API_KEY", help="Require 'Bearer KEY' on /v1/*.")
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(help="Name clients send as 'model' (default: --model).")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Inputs per embedding micro-batch.")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="Micro-batch gathering window.")] = 5.0,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body.")] = 4.0,
    max_inputs: Annotated[int, typer.Option(help="Inputs per embedding request.")] = 2048,
    max_tokens_limit: Annotated[int, typer.Option(help="Largest max_tokens accepted.")] = 2048,
    rag_collection: Annotated[
        str | None, typer.Option(help="Qdrant collection (built by `gemlm rag index`): /v1/rag.")
    ] = None,
    qdrant_path: Annotated[
        Path | None, typer.Option(help="Local store folder (default $GEMLM_HOME/qdrant-edge).")
    ] = None,
    qdrant_url: Annotated[str | None, typer.Option(help="A Qdrant server URL instead.")] = None,
    store: RagStoreOpt = "edge",
    log_level: str = "info",
) -> None:
    """OpenAI-compatible server: embeddings, completions and chat (+ RAG) from one model."""
    from .serving import BatchSettings, ServeLimits, run_server

    m = load(model, dtype)
    engine = None
    if rag_collection:
        from .rag.ask import RagEngine
        from .rag.store import RagError, RagStore, model_id_for

        try:
            db = RagStore(path=qdrant_path, url=qdrant_url, engine=store)
            engine = RagEngine(m, db, rag_collection, model_id=model_id_for(model))
        except (RagError, RuntimeError) as exc:
            console.print(f"[red]error:[/red] {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from exc
    console.print(f"serving {model} on http://{host}:{port}/v1", style="green")
    run_server(
        m,
        model_name=model_name or model,
        host=host,
        port=port,
        api_key=api_key,
        limits=ServeLimits(
            max_body_bytes=int(max_body_mb * 2**20),
            max_inputs=max_inputs,
            max_output_tokens=max_tokens_limit,
        ),
        batching=BatchSettings(max_batch=max_batch, max_wait_ms=max_wait_ms),
        log_level=log_level,
        rag=engine,
    )


from .rag.cli import StoreOpt as RagStoreOpt  # noqa: E402  (used by `serve`, resolved late)
from .rag.cli import app as rag_app  # noqa: E402  (light: typer + rich only)

app.add_typer(rag_app, name="rag")


@app.command("eval")
def eval_cmd(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="gem:<folder|alias>, mean:|wmean:|last:|prompteol:<base>, st:<folder>, minilm; "
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

    from .evaluation.run import evaluate
    from .evaluation.specs import SpecError

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
        console.print(f"[red]error:[/red] {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
