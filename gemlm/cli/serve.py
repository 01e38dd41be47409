"""``gemlm serve``: the OpenAI-compatible server (gemlm/serving/), optionally with /v1/rag."""

from __future__ import annotations

from typing import Annotated

import typer

from ..rag.types import RagError
from ..sources import DEFAULT_MODEL
from .options import (
    DtypeOpt,
    ModelOpt,
    QdrantPathOpt,
    QdrantUrlOpt,
    StoreOpt,
    console,
    fail,
    load,
)


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
    truncate: Annotated[
        bool,
        typer.Option(
            help="Embed the start of an input longer than the embedding window instead of "
            'refusing it (400); a request\'s "truncate" field wins.'
        ),
    ] = False,
    accept_token_ids: Annotated[
        bool,
        typer.Option(
            help="Embed token-id inputs (only for clients that tokenize with this model's own "
            "tokenizer: ids of another, e.g. LangChain's default tiktoken ids, are wrong "
            "vectors; those that do not re-encode to themselves are refused)."
        ),
    ] = False,
    rag_collection: Annotated[
        str | None, typer.Option(help="Qdrant collection (built by `gemlm rag index`): /v1/rag.")
    ] = None,
    qdrant_path: QdrantPathOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    store: StoreOpt = "edge",
    log_level: str = "info",
) -> None:
    """OpenAI-compatible server: embeddings, completions and chat (+ RAG) from one model."""
    from ..serving import BatchSettings, ServeLimits, run_server

    m = load(model, dtype)
    engine = None
    if rag_collection:
        from ..rag.ask import RagEngine
        from ..rag.store import RagStore, model_id_for

        try:
            db = RagStore(path=qdrant_path, url=qdrant_url, engine=store)
            engine = RagEngine(m, db, rag_collection, model_id=model_id_for(model))
        except (RagError, RuntimeError) as exc:
            raise fail(exc) from exc
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
            truncate=truncate,
            accept_token_ids=accept_token_ids,
        ),
        batching=BatchSettings(max_batch=max_batch, max_wait_ms=max_wait_ms),
        log_level=log_level,
        rag=engine,
    )
