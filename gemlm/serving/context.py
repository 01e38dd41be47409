"""What every handler shares: the model, the worker thread, the embedding batcher and the limits.

Nothing here checks a request (``handler.py`` and the endpoint handlers do); the embedding job
reports, per input, what only the worker can measure (over the window, foreign token ids), and
the embeddings handler turns that into the client's error.
"""

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
    """Request limits and input policies; beyond the limits a request is refused (413 for the
    body, else 400/503).

    An embedding input longer than the model's embedding window is refused (400 naming it)
    unless the request says ``"truncate": true`` or ``truncate`` is set here (TEI's habit). Token-id
    embedding inputs are refused unless ``accept_token_ids``: no one can tell this tokenizer's
    ids from another's (LangChain's OpenAIEmbeddings sends tiktoken cl100k ids by default), so
    only a server told that its clients tokenize with this model's own tokenizer takes them.
    """

    max_body_bytes: int = 4 * 2**20  # 4 MiB: 2,048 inputs of ~2 KB text
    max_inputs: int = 2048  # inputs per embedding request (OpenAI's own cap)
    max_input_tokens: int = 8192  # token-id inputs and prompts
    max_prompts: int = 16  # prompts per completion request
    max_n: int = 8  # choices per prompt
    max_stop: int = 4  # stop strings (OpenAI's cap)
    max_output_tokens: int = 2048  # max_tokens ceiling
    default_chat_max_tokens: int = 512  # when a chat request names none (clipped to the context)
    max_pending: int = 512  # requests admitted at once; more get 503 (back-pressure)
    truncate: bool = False  # embed the start of an over-window input (a request's "truncate" wins)
    accept_token_ids: bool = False  # embed token-id inputs (checked to be this tokenizer's own)


@dataclass(frozen=True)
class EmbedItem:
    """One embedding input as the micro-batcher carries it, with its request's policy."""

    input: str | list[int]
    truncate: bool = False  # embed the start of an over-window input instead of refusing it


@dataclass(frozen=True)
class Embedded:
    """The micro-batcher's result for one input: its vector, or why it was refused."""

    vector: np.ndarray | None  # (D,) unit vector; None when refused
    tokens: int  # model input tokens embedded, or (refused) the tokens the input needs
    refused: str | None = None  # "too_long" or "foreign_ids"


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
        # embedding batches that arrive during a generation run between two of its tokens
        gem.generator.between_tokens.append(self.worker.run_urgent)
        self.batcher: MicroBatcher[Any, Any] = MicroBatcher(
            self.worker,
            self.embed,
            max_batch=batching.max_batch,
            max_wait=batching.max_wait_ms / 1000,
        )
        self.context_length: int = gem.context_length
        self.vocab_size: int = gem.vocab_size
        self.embedding_dim: int = gem.embedding_dim
        self.embedding_window: int = gem.config.max_length
        self.special_ids: frozenset[int] = frozenset(gem.special_ids)
        self.pending = 0
        self.cancels: set[threading.Event] = set()  # running generations, stopped on shutdown

    @property
    def generation_defaults(self) -> dict[str, Any]:
        """What a request that leaves sampling unset gets (the model's, read when asked)."""
        return self.gem.generation_defaults

    def embed(self, items: list[EmbedItem]) -> list[Embedded]:
        """The micro-batcher's job (worker thread): each input's unit vector and token count, or
        why it is refused (over the embedding window without ``truncate``; token ids that are
        not this tokenizer's own), so one bad input fails its own request, not the batch.

        Texts get the model's default prompt, as ``encode`` gives them; token-id inputs are
        taken as is. Both run packed: a micro-batch holds texts in arrival order, and padded
        batches of them would be ~40% padding (``benchmarks/serve_padding.py``).
        """
        ids, lengths = self.gem.embedding_inputs([it.input for it in items])  # one tokenization
        out: list[Embedded | None] = [
            self._refusal(it, n) for it, n in zip(items, lengths, strict=True)
        ]
        kept = [i for i, r in enumerate(out) if r is None]
        if kept:
            vecs = self.gem.embed_ids(
                [ids[i] for i in kept],
                packed=True,
                row_tokens=self.batching.row_tokens,
                max_tokens=self.batching.max_tokens,
            ).numpy()
            for row, i in enumerate(kept):
                out[i] = Embedded(vecs[row], len(ids[i]))
        return out  # type: ignore[return-value]  # every slot is filled above

    def _refusal(self, item: EmbedItem, length: int) -> Embedded | None:
        if length > self.embedding_window and not item.truncate:
            return Embedded(None, length, "too_long")
        if not isinstance(item.input, str) and not self.own_ids(item.input):
            return Embedded(None, length, "foreign_ids")
        return None

    def own_ids(self, ids: list[int]) -> bool:
        """Whether ``ids`` are what this tokenizer makes of their own text (decoded, then
        encoded again). Ids of another tokenizer usually are not, but short lists can be by
        chance: this check finds foreign ids, it cannot prove ids are this tokenizer's."""
        tok = self.gem.tokenizer
        text = tok.decode(ids, skip_special_tokens=False)
        return tok(text, add_special_tokens=False)["input_ids"] == list(ids)

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
        if self.worker.run_urgent in self.gem.generator.between_tokens:
            self.gem.generator.between_tokens.remove(self.worker.run_urgent)


def serving(request: Request) -> ServingContext:
    return request.app.state.serving
