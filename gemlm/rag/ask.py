"""Retrieve and answer with one GEM model: ``RagEngine.ask`` and the streaming ``ask_stream``.

Question in -> answer + numbered sources (with cosine scores) + timings out. With ``reuse=False``
(default) the question is embedded with the model's own query prompt (``encode_query``) and
generation prefills the whole prompt in one call. With ``reuse=True`` it is embedded after the
chat header, in the same forward that prefills the generation prompt's first tokens (see
``reuse.py``): exact, but on CPU continuing a prefill from a cache costs more than the question
tokens it saves (``benchmarks/rag_reuse.py``), so it is opt-in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import prompting, reuse
from .store import RagError, RagStore, model_identity

if TYPE_CHECKING:
    from gemlm.embedding import QueryForward
    from gemlm.generation import Sampling
    from gemlm.model import GEMModel


class QuestionTooLong(RagError):
    pass


@dataclass
class Source:
    """A retrieved passage as cited in the prompt: ``[rank]``."""

    rank: int
    score: float
    text: str
    source: str
    title: str = ""
    doc_id: str = ""
    chunk: int = 0
    id: str = ""


@dataclass
class RagAnswer:
    question: str
    answer: str
    sources: list[Source]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens whose KV came from the embedding forward
    timings: dict[str, float] = field(default_factory=dict)  # seconds

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RagEngine:
    """One GEM model + one Qdrant collection, checked against each other once at start."""

    def __init__(
        self,
        model: GEMModel,
        store: RagStore,
        collection: str,
        *,
        model_id: str | None = None,
        top_k: int = 4,
        reuse: bool = False,
        instruction: str | None = None,
    ) -> None:
        self.model, self.store, self.collection = model, store, collection
        self.top_k, self.reuse, self.instruction = top_k, reuse, instruction
        identity = model_identity(model, model_id or "")
        if model_id is None:  # compare everything but the name
            identity["model"] = store.identity(collection).get("model")
        store.check(collection, identity)
        self.header = prompting.chat_header(model) if reuse else ""
        self.context_window = model.context_length

    # ------------------------------------------------------------------ retrieval
    def embed_question(self, question: str) -> tuple[np.ndarray, QueryForward | None]:
        """The query vector; in reuse mode also the forward whose cache generation reuses."""
        if not isinstance(question, str) or not question.strip():
            raise RagError("the question is empty")
        gem = self.model
        if self.reuse:  # after the chat header, as the generation prompt starts
            text_ids = gem.tokenizer(self.header + question, add_special_tokens=False)["input_ids"]
            try:  # the engine refuses a text its window cannot hold, naming both sizes
                fwd = gem.embed_keep_cache(text_ids)
            except ValueError as exc:
                raise QuestionTooLong(f"with the chat header, {exc}") from exc
            return fwd.embedding.numpy(), fwd
        ids, cut = gem.tokenize_for_embedding([question], role="query")
        if cut:
            raise QuestionTooLong(
                f"the question is longer than the embedding window holds with its prompt "
                f"(max_length={gem.config.max_length} tokens, special tokens included)"
            )
        return gem.embed_ids(ids)[0].numpy(), None

    def retrieve(self, question: str, top_k: int | None = None) -> list[Source]:
        vec, _ = self.embed_question(question)
        return self._search(vec, top_k)

    def _search(self, vec: np.ndarray, top_k: int | None) -> list[Source]:
        hits = self.store.search(self.collection, vec, top_k or self.top_k)
        return [
            Source(
                rank=i,
                score=h.score,
                text=str(h.payload.get("text", "")),
                source=str(h.payload.get("source", "")),
                title=str(h.payload.get("title", "")),
                doc_id=str(h.payload.get("doc_id", "")),
                chunk=int(h.payload.get("chunk", 0)),
                id=h.id,
            )
            for i, h in enumerate(hits, 1)
        ]

    # ------------------------------------------------------------------ answering
    def prompt_ids(
        self, question: str, sources: list[Source], max_new_tokens: int
    ) -> tuple[list[int], list[Source]]:
        """Chat prompt ids; the lowest-ranked sources are dropped until it fits the window."""
        kept = list(sources)
        while True:
            payloads = [{"text": s.text, "title": s.title} for s in kept]
            msgs = prompting.messages_for(question, payloads, self.instruction)
            ids = self.model.prompt_ids(msgs, chat=True)
            if len(ids) + max_new_tokens <= self.context_window:
                return ids, kept
            if not kept:
                raise QuestionTooLong(
                    f"the question needs {len(ids)} prompt tokens + {max_new_tokens} new tokens, "
                    f"more than the model's context window ({self.context_window})"
                )
            kept.pop()

    def _prepare(
        self, question: str, top_k: int | None, max_new_tokens: int
    ) -> tuple[list[int], list[Source], Any, int, dict[str, float]]:
        t0 = time.perf_counter()
        vec, fwd = self.embed_question(question)
        t1 = time.perf_counter()
        sources = self._search(vec, top_k)
        t2 = time.perf_counter()
        ids, sources = self.prompt_ids(question, sources, max_new_tokens)
        cache, reused = reuse.prepare_cache(fwd, ids)
        timings = {"embed": t1 - t0, "retrieve": t2 - t1}
        return ids, sources, cache, reused, timings

    def ask(
        self,
        question: str,
        *,
        top_k: int | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
    ) -> RagAnswer:
        """Retrieve ``top_k`` passages and answer from them, citing them as [1], [2], ..."""
        t0 = time.perf_counter()
        ids, sources, cache, reused, timings = self._prepare(question, top_k, max_new_tokens)
        t1 = time.perf_counter()
        out = self.model.complete(
            ids, max_new_tokens=max_new_tokens, temperature=temperature, cache=cache
        )
        timings["generate"] = time.perf_counter() - t1
        timings["total"] = time.perf_counter() - t0
        return RagAnswer(
            question, out.text.strip(), sources, len(ids), out.completion_tokens, reused, timings
        )

    def ask_stream(
        self,
        question: str,
        *,
        top_k: int | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
    ) -> AnswerStream:
        """Retrieve now (errors raise here); iterate the result for text pieces."""
        from gemlm.generation import Sampling

        sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature)
        t0 = time.perf_counter()
        ids, sources, cache, reused, timings = self._prepare(question, top_k, max_new_tokens)
        return AnswerStream(self, question, ids, sources, cache, reused, timings, sampling, t0)


class AnswerStream:
    """Text pieces of an answer as they are generated; ``sources`` is known from the start.

    >>> # stream = engine.ask_stream("q"); stream.sources; "".join(stream); stream.result()
    """

    def __init__(
        self,
        engine: RagEngine,
        question: str,
        ids: list[int],
        sources: list[Source],
        cache: Any,
        reused: int,
        timings: dict[str, float],
        sampling: Sampling,
        started: float,
    ) -> None:
        self.engine, self.question, self.sources = engine, question, sources
        self._ids, self._cache, self._reused, self._sampling = ids, cache, reused, sampling
        self.timings, self._started = timings, started
        self._answer: RagAnswer | None = None

    def __iter__(self) -> Iterator[str]:
        if self._answer is not None:
            raise RuntimeError("this stream was already consumed")
        t1 = time.perf_counter()
        pieces: list[str] = []
        gen = self.engine.model.stream(self._ids, self._sampling, cache=self._cache)
        while True:
            try:
                piece = next(gen)
            except StopIteration as stop:
                new = stop.value.completion_tokens
                break
            pieces.append(piece)
            yield piece
        self.timings["generate"] = time.perf_counter() - t1
        self.timings["total"] = time.perf_counter() - self._started
        text = "".join(pieces).strip()
        self._answer = RagAnswer(
            self.question, text, self.sources, len(self._ids), new, self._reused, self.timings
        )

    def result(self) -> RagAnswer:
        """The full answer (after the stream has been consumed)."""
        if self._answer is None:
            for _ in self:
                pass
        assert self._answer is not None
        return self._answer
