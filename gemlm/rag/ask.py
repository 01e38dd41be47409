"""Retrieve and answer with one GEM model: ``RagEngine.ask`` and the streaming ``ask_stream``.

Question in -> answer + numbered sources (with cosine scores) + the numbers the answer cites +
timings out. Answers are brief by default: the prompt asks for one or two sentences citing the
sources as ``[n]``, generation stops at a blank line (or where the model starts another
"Question:"), within :data:`DEFAULT_ANSWER_TOKENS`, and sampling left unset takes the model's
generation defaults. ``answer`` answers from passages given by the caller (e.g. the gold
passage of a benchmark), ``ask`` from the retrieved ones. With ``reuse=False``
(default) the question is embedded with the model's own query prompt (``encode_query``) and
generation prefills the whole prompt in one call. With ``reuse=True`` it is embedded after the
chat header, in the same forward that prefills the generation prompt's first tokens (see
``reuse.py``): exact, but on CPU continuing a prefill from a cache costs more than the question
tokens it saves (``benchmarks/rag_reuse.py``), so it is opt-in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from gemlm.sampling import Sampling

from . import prompting, reuse
from .store import RagError, RagStore, model_identity

if TYPE_CHECKING:
    from gemlm.embedding import QueryForward
    from gemlm.model import GEMModel

DEFAULT_ANSWER_TOKENS = 96  # one or two sentences with citations; a runaway answer stops here


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
    cited: list[int] = field(default_factory=list)  # the source numbers the answer cites as [n]
    finish_reason: str = "stop"  # "length": cut at max_new_tokens

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
        repeat_question: bool = True,
    ) -> None:
        self.model, self.store, self.collection = model, store, collection
        self.top_k, self.reuse, self.instruction = top_k, reuse, instruction
        self.repeat_question = repeat_question  # asked again after the sources (False: as before)
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
            msgs = prompting.messages_for(
                question, payloads, self.instruction, repeat_question=self.repeat_question
            )
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

    @staticmethod
    def sampling(
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: tuple[str, ...] | None = None,
        seed: int | None = None,
    ) -> Sampling:
        """An answer's sampling: unset, a short budget, the answer stops
        (:data:`gemlm.rag.prompting.ANSWER_STOP`) and the model's generation defaults."""
        return Sampling(
            max_new_tokens=max_new_tokens or DEFAULT_ANSWER_TOKENS,
            temperature=temperature,
            top_p=top_p,
            stop=prompting.ANSWER_STOP if stop is None else stop,
            seed=seed,
        )

    def ask(self, question: str, *, top_k: int | None = None, **sampling: Any) -> RagAnswer:
        """Retrieve ``top_k`` passages and answer from them, citing them as [1], [2], ...

        ``sampling``: ``max_new_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``
        (:meth:`sampling`; unset ones are the brief-answer defaults)."""
        s = self.sampling(**sampling)
        t0 = time.perf_counter()
        ids, sources, cache, reused, timings = self._prepare(question, top_k, s.max_new_tokens)
        return self._generate(question, ids, sources, s, cache, reused, timings, t0)

    def answer(self, question: str, sources: list[Source], **sampling: Any) -> RagAnswer:
        """Answer from the given passages (no retrieval), numbered in their order; the
        lowest-ranked are dropped if the prompt would not fit."""
        if not isinstance(question, str) or not question.strip():
            raise RagError("the question is empty")
        s = self.sampling(**sampling)
        t0 = time.perf_counter()
        numbered = [replace(src, rank=i) for i, src in enumerate(sources, 1)]
        ids, kept = self.prompt_ids(question, numbered, s.max_new_tokens)
        return self._generate(question, ids, kept, s, None, 0, {}, t0)

    def _generate(
        self,
        question: str,
        ids: list[int],
        sources: list[Source],
        s: Sampling,
        cache: Any,
        reused: int,
        timings: dict[str, float],
        t0: float,
    ) -> RagAnswer:
        t1 = time.perf_counter()
        out = self.model.complete(ids, s, cache=cache)
        timings["generate"] = time.perf_counter() - t1
        timings["total"] = time.perf_counter() - t0
        return make_answer(
            question,
            out.text,
            sources,
            len(ids),
            out.completion_tokens,
            reused,
            timings,
            out.finish_reason,
        )

    def ask_stream(
        self, question: str, *, top_k: int | None = None, **sampling: Any
    ) -> AnswerStream:
        """Retrieve now (errors raise here); iterate the result for text pieces."""
        s = self.sampling(**sampling)
        t0 = time.perf_counter()
        ids, sources, cache, reused, timings = self._prepare(question, top_k, s.max_new_tokens)
        return AnswerStream(self, question, ids, sources, cache, reused, timings, s, t0)


def make_answer(
    question: str,
    text: str,
    sources: list[Source],
    prompt_tokens: int,
    completion_tokens: int,
    reused: int,
    timings: dict[str, float],
    finish_reason: str,
) -> RagAnswer:
    """A :class:`RagAnswer`: the text stripped, the [n] it cites among ``sources`` listed."""
    text = text.strip()
    return RagAnswer(
        question,
        text,
        sources,
        prompt_tokens,
        completion_tokens,
        reused,
        timings,
        prompting.cited_numbers(text, len(sources)),
        finish_reason,
    )


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
                done = stop.value
                break
            pieces.append(piece)
            yield piece
        self.timings["generate"] = time.perf_counter() - t1
        self.timings["total"] = time.perf_counter() - self._started
        self._answer = make_answer(
            self.question,
            "".join(pieces),
            self.sources,
            len(self._ids),
            done.completion_tokens,
            self._reused,
            self.timings,
            done.finish_reason,
        )

    def result(self) -> RagAnswer:
        """The full answer (after the stream has been consumed)."""
        if self._answer is None:
            for _ in self:
                pass
        assert self._answer is not None
        return self._answer
