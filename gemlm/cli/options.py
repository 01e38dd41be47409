"""What the commands share: option types, the consoles, the one error exit, model loading.

Light at import (typer + rich): models, Ray and Qdrant are imported inside the functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from ..sources import ModelSourceError

if TYPE_CHECKING:
    from ..model import GEMModel

console = Console()
err_console = Console(stderr=True)

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="gemlm/HF folder, .gguf file, alias or hub id.")
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        help="auto (bf16 where the CPU has it), float32, bfloat16, or int8 (float32 with the "
        "decoder's linear layers dynamic int8: approximate; see gemlm.int8)."
    ),
]

# the vector store (gemlm rag, gemlm serve --rag-collection)
CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Qdrant collection name.")]
QdrantPathOpt = Annotated[
    Path | None,
    typer.Option(
        help="Local store folder, no server needed (default: $GEMLM_HOME/qdrant-edge, or "
        "$GEMLM_HOME/qdrant with --store local)."
    ),
]
QdrantUrlOpt = Annotated[
    str | None, typer.Option(help="A Qdrant server or cluster URL instead of a local folder.")
]
QdrantApiKeyOpt = Annotated[
    str | None, typer.Option(envvar="QDRANT_API_KEY", help="API key for --qdrant-url.")
]
StoreOpt = Annotated[
    Literal["edge", "local"],
    typer.Option(
        "--store",
        help="Local engine: edge (Qdrant Edge in-process: HNSW, on disk) or local "
        "(qdrant-client local mode, for folders built with it). Ignored with --qdrant-url.",
    ),
]

# the embedding engine (gemlm embed, gemlm rag index)
EngineOpt = Annotated[
    str,
    typer.Option(
        help="local: this process. ray: input files -> Parquet parts in the --out folder, "
        "one model per Ray actor, resumable (pip install 'gemlm\\[ray]')."
    ),
]
ActorsOpt = Annotated[
    int | None,
    typer.Option(min=1, help="ray: model actors (default: cluster CPUs / threads per actor)."),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        envvar="RAY_ADDRESS",
        help="ray: a running cluster (ray start --head); else a local Ray.",
    ),
]


def fail(message: object, *, code: int = 2, stderr: bool = False) -> typer.Exit:
    """Print ``error: <message>`` in red (escaped: brackets show as written); return the exit.

    Callers ``raise fail(...)`` (``from exc`` inside an ``except``); usage errors are code 2.
    """
    (err_console if stderr else console).print(f"[red]error:[/red] {escape(str(message))}")
    return typer.Exit(code)


def load(model: str, dtype: str = "auto", **kwargs: object) -> GEMModel:
    """Load a model with a spinner; turn source errors into one clear line and exit code 2."""
    from transformers.utils import logging as hf_logging

    from ..model import GEMModel

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with console.status(f"loading {model}"):
            return GEMModel.from_pretrained(model, dtype=dtype, **kwargs)
    except (ModelSourceError, ValueError, OSError) as exc:
        raise fail(exc) from exc


def read_texts(texts: list[str] | None, file: Path | None) -> list[str]:
    """Texts from arguments, or from a file: .jsonl (a "text" field) or one text per line."""
    out = list(texts or [])
    if file is not None:
        if not file.is_file():
            raise fail(f"no such file: {file}")
        lines = file.read_text(encoding="utf-8").splitlines()
        if file.suffix == ".jsonl":
            out += [_jsonl_text(line, file, n) for n, line in enumerate(lines, 1) if line.strip()]
        else:
            out += [line for line in lines if line.strip()]
    if not out:
        raise fail("give texts as arguments or with --file")
    return out


def _jsonl_text(line: str, file: Path, number: int) -> str:
    """The "text" of one JSON line; a clear error naming the file and line otherwise."""
    try:
        row = json.loads(line)
    except ValueError:
        row = None
    text = row.get("text") if isinstance(row, dict) else None
    if not isinstance(text, str):
        raise fail(f'{file}, line {number}: not a JSON object with a string "text" field')
    return text
