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
from typing import Any

import numpy as np

from . import prompting, reuse
from .store import RagError, RagStore, model_identity


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
        model: Any,
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
        cfg = model.model.config.get_text_config()
        self.context_window = int(getattr(cfg, "max_position_embeddings", 0) or 2048)

    # ------------------------------------------------------------------ retrieval
    def embed_question(self, question: str) -> tuple[np.ndarray, reuse.QueryForward | None]:
        """The query vector; in reuse mode also the forward whose cache generation reuses."""
        if not isinstance(question, str) or not question.strip():
            raise RagError("the question is empty")
        tok = self.model.tokenizer
        if self.reuse:
            text_ids = tok(self.header + question, add_special_tokens=False)["input_ids"]
        else:
            prompt = self.model.config.prompts.get("query", "")
            text_ids = tok(prompt + question, add_special_tokens=True)["input_ids"]
        room = self.model.config.max_length - len(self.model.readout_tail())
        if len(text_ids) > room:
            raise QuestionTooLong(
                f"the question is {len(text_ids)} tokens with its prompt; the embedding window "
                f"holds {room} (max_length={self.model.config.max_length})"
            )
        if self.reuse:
            fwd = reuse.embed_with_cache(self.model, text_ids)
            return fwd.embedding.numpy(), fwd
        return self.model.encode_query(question), None

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
            text = self.model.chat_prompt(msgs)
            ids = self.model.tokenizer(text, add_special_tokens=False)["input_ids"]
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
        gen = self.model.generation_kwargs(0, max_new_tokens, temperature)
        t0 = time.perf_counter()
        ids, sources, cache, reused, timings = self._prepare(question, top_k, max_new_tokens)
        t1 = time.perf_counter()
        new = reuse.generate_ids(self.model, ids, cache, **gen)
        timings["generate"] = time.perf_counter() - t1
        timings["total"] = time.perf_counter() - t0
        text = self.model.tokenizer.decode(new, skip_special_tokens=True).strip()
        return RagAnswer(question, text, sources, len(ids), len(new), reused, timings)

    def ask_stream(
        self,
        question: str,
        *,
        top_k: int | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
    ) -> AnswerStream:
        """Retrieve now (errors raise here); iterate the result for text pieces."""
        gen = self.model.generation_kwargs(0, max_new_tokens, temperature)
        t0 = time.perf_counter()
        ids, sources, cache, reused, timings = self._prepare(question, top_k, max_new_tokens)
        return AnswerStream(self, question, ids, sources, cache, reused, timings, gen, t0)


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
        gen: dict[str, Any],
        started: float,
    ) -> None:
        self.engine, self.question, self.sources = engine, question, sources
        self._ids, self._cache, self._reused, self._gen = ids, cache, reused, gen
        self.timings, self._started = timings, started
        self._answer: RagAnswer | None = None

    def __iter__(self) -> Iterator[str]:
        if self._answer is not None:
            raise RuntimeError("this stream was already consumed")
        t1 = time.perf_counter()
        pieces: list[str] = []
        gen = reuse.stream_ids(self.engine.model, self._ids, self._cache, **self._gen)
        while True:
            try:
                piece = next(gen)
            except StopIteration as stop:
                new = stop.value or []
                break
            pieces.append(piece)
            yield piece
        self.timings["generate"] = time.perf_counter() - t1
        self.timings["total"] = time.perf_counter() - self._started
        text = "".join(pieces).strip()
        self._answer = RagAnswer(
            self.question, text, self.sources, len(self._ids), len(new), self._reused, self.timings
        )

    def result(self) -> RagAnswer:
        """The full answer (after the stream has been consumed)."""
        if self._answer is None:
            for _ in self:
                pass
        assert self._answer is not None
        return self._answer
