"""What every route shares: the model, the worker thread, the embedding batcher and the limits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import Request

from .batcher import MicroBatcher, ModelWorker
from .errors import APIError

if TYPE_CHECKING:
    from gemlm.model import GEMModel


@dataclass
class ServeLimits:
    """Request limits; beyond them the request is refused (413 for the body, else 400/503)."""

    max_body_bytes: int = 4 * 2**20  # 4 MiB: 2,048 inputs of ~2 KB text
    max_inputs: int = 2048  # inputs per embedding request (OpenAI's own cap)
    max_input_tokens: int = 8192  # token-id inputs and prompts (texts are truncated, not refused)
    max_prompts: int = 16  # prompts per completion request
    max_n: int = 8  # choices per prompt
    max_stop: int = 4  # stop strings (OpenAI's cap)
    max_output_tokens: int = 2048  # max_tokens ceiling
    default_chat_max_tokens: int = 512  # when a chat request names none (clipped to the context)
    max_pending: int = 512  # requests admitted at once; more get 503 (back-pressure)


@dataclass
class BatchSettings:
    """Micro-batching of concurrent embedding requests.

    A micro-batch closes when it holds ``max_batch`` inputs or ``max_wait_ms`` after its first
    request; its inputs are packed end to end in rows of ``row_tokens`` (``gemlm.packing``) and
    run ``max_tokens`` tokens per forward.
    """

    max_batch: int = 64
    max_wait_ms: float = 5.0
    row_tokens: int = 64
    max_tokens: int = 1024


class ServingContext:
    """The loaded model plus the machinery around it; one per app (``app.state.serving``)."""

    def __init__(
        self,
        gem: GEMModel,
        *,
        model_name: str,
        limits: ServeLimits,
        batching: BatchSettings,
    ) -> None:
        self.gem, self.model_name, self.limits, self.batching = gem, model_name, limits, batching
        self.created = int(time.time())
        self.worker = ModelWorker()
        self.batcher: MicroBatcher[Any, Any] = MicroBatcher(
            self.worker,
            self.embed,
            max_batch=batching.max_batch,
            max_wait=batching.max_wait_ms / 1000,
        )
        self.context_length: int = gem.context_length
        self.vocab_size: int = gem.vocab_size
        self.embedding_dim: int = gem.embedding_dim
        self.pending = 0
        self.cancels: set[threading.Event] = set()  # running generations, stopped on shutdown

    def embed(self, inputs: list[str | list[int]]) -> list[tuple[np.ndarray, int]]:
        """The micro-batcher's job (worker thread): inputs -> [(unit vector (D,), tokens), ...].

        Texts get the model's default prompt, as ``encode`` gives them; token-id inputs (sent by
        LangChain's ``OpenAIEmbeddings``) are taken as is. Both run packed: a micro-batch holds
        texts in arrival order, and padded batches of them would be ~40% padding
        (``benchmarks/serve_padding.py``).
        """
        ids, _ = self.gem.tokenize_for_embedding(inputs)
        vecs = self.gem.embed_ids(
            ids,
            packed=True,
            row_tokens=self.batching.row_tokens,
            max_tokens=self.batching.max_tokens,
        ).numpy()
        return [(vecs[i], len(x)) for i, x in enumerate(ids)]

    def check_model(self, name: str | None) -> None:
        """A request may omit ``model``; naming another one is a 404 as in the OpenAI API."""
        if name is not None and name != self.model_name:
            raise APIError(
                404,
                f"The model {name!r} does not exist; this server serves {self.model_name!r}",
                param="model",
                code="model_not_found",
            )

    def check_ids(self, ids: list[int], what: str) -> None:
        if not ids:
            raise APIError(400, f"{what} is empty", param=what, code="invalid_value")
        if len(ids) > self.limits.max_input_tokens:
            raise APIError(
                400,
                f"{what} has {len(ids)} tokens; the limit is {self.limits.max_input_tokens}",
                param=what,
                code="context_length_exceeded",
            )
        bad = next((t for t in ids if t >= self.vocab_size), None)
        if bad is not None:
            raise APIError(
                400,
                f"{what} holds token id {bad}, outside the vocabulary (size {self.vocab_size})",
                param=what,
                code="invalid_value",
            )

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Count a request in flight; refuse it with 503 once ``max_pending`` are."""
        if self.pending >= self.limits.max_pending:
            raise APIError(
                503, "server overloaded, retry later", code="overloaded", type="server_error"
            )
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    async def aclose(self) -> None:
        """Stop running generations, drain the batcher, then end the worker thread."""
        for event in list(self.cancels):
            event.set()
        await self.batcher.aclose()
        await asyncio.to_thread(self.worker.shutdown)


def serving(request: Request) -> ServingContext:
    return request.app.state.serving
