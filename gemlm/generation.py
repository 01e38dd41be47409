"""The generation engine: the untouched causal LM with the GEM tokens suppressed.

Every generation in gemlm goes through :meth:`GenerationEngine.run` (``GEMModel.complete``,
``generate``, ``chat``, ``stream``, the server's completions and chat, RAG answers): one
``model.generate`` call with one :class:`Sampling`, stop strings matched in the generated text
only (held back while they may still be starting, cut as in the OpenAI API), an optional cancel
event, an optional KV cache that already holds a prefix of the prompt, and one finish reason.

Sampling settings a caller leaves unset (``None``) take the model's own defaults
(:mod:`gemlm.sampling`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    SuppressTokensLogitsProcessor,
    TextStreamer,
)

from .sampling import GenerationDefaults, Sampling
from .static_decoding import StaticDecoding

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class Completion:
    """One generated continuation with what an OpenAI-style server reports about it."""

    text: str
    token_ids: list[int]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (eos, a stop string or a cancel) or "length"


def cut_at_stop(text: str, stop: Iterable[str]) -> tuple[str, bool]:
    """Text up to the first stop string (excluded, as in the OpenAI API).

    >>> cut_at_stop("Paris.\\nQ: next", ["\\nQ:"])
    ('Paris.', True)
    """
    hits = [text.find(s) for s in stop if s and s in text]
    return (text[: min(hits)], True) if hits else (text, False)


class _StopOnText(StoppingCriteria):
    """Stop once a stop string appears in the *generated* text (transformers' own stop_strings
    also match across the prompt boundary, which the OpenAI semantics do not)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_len: int, stops: tuple[str, ...]):
        self.tokenizer, self.prompt_len, self.stops = tokenizer, prompt_len, stops

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw: Any) -> torch.Tensor:
        done = [
            any(
                s in self.tokenizer.decode(row[self.prompt_len :], skip_special_tokens=True)
                for s in self.stops
            )
            for row in input_ids
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _OpenAIPenalties(LogitsProcessor):
    """``frequency * count + presence * (count > 0)`` off each token's logit, ``count`` being
    how often it occurs in the generated tokens (after ``prompt_len``), as OpenAI and vLLM do."""

    def __init__(self, prompt_len: int, frequency: float, presence: float) -> None:
        self.prompt_len, self.frequency, self.presence = prompt_len, frequency, presence

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_len :]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(
            1, generated, torch.ones_like(generated, dtype=scores.dtype)
        )
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)


class _BetweenTokens(StoppingCriteria):
    """Calls each of ``hooks`` after every generated token; never stops the generation."""

    def __init__(self, hooks: list[Callable[[], Any]]) -> None:
        self.hooks = list(hooks)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw: Any) -> torch.Tensor:
        for hook in self.hooks:
            hook()
        return torch.zeros((input_ids.shape[0],), dtype=torch.bool, device=input_ids.device)


class _PieceStreamer(TextStreamer):
    """Hands finished text to ``emit``, holding back what may begin a stop string."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, stop: tuple[str, ...], emit: Callable[[str], Any]
    ) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.stops, self.emit = stop, emit
        self.hold = max((len(x) for x in stop), default=1) - 1
        self.text, self.sent, self.stopped = "", 0, False

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if self.stopped:
            return
        self.text += text
        cut, self.stopped = cut_at_stop(self.text, self.stops)
        ready = len(cut) if (self.stopped or stream_end) else len(self.text) - self.hold
        if ready > self.sent:
            self.emit(self.text[self.sent : ready])
            self.sent = ready


class GenerationEngine:
    """``model.generate`` with the ids in ``suppress_ids`` (the GEM tokens) never generated.

    Every callable in ``between_tokens`` is called after each generated token on the generating
    thread: a server adds its worker's ``run_urgent`` there (and removes it when it closes), so
    embedding batches that arrive during a long generation run between two of its tokens
    (``gemlm.serving.batcher``).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        suppress_ids: list[int],
        pad_id: int,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.suppress_ids, self.pad_id = list(suppress_ids), pad_id
        self.between_tokens: list[Callable[[], Any]] = []
        self.static: StaticDecoding | None = None  # opt-in: :meth:`use_static_cache`

    def use_static_cache(
        self, compile: bool = True, warm: Iterable[int] = (), smallest: int = 256
    ) -> None:
        """Decode with a static KV cache per length bucket and, with ``compile``, a
        ``torch.compile``'d decode step (:mod:`gemlm.static_decoding`); greedy output is the
        same tokens. A generation given a prefix ``cache`` still decodes eagerly. ``warm``:
        positions (prompt + new tokens) whose buckets are compiled now, not on first use;
        ``smallest``: the smallest bucket (cache length)."""
        self.static = StaticDecoding(compile=compile, smallest=smallest)
        for need in warm:  # two new tokens: the prefill, then one compiled decode step
            self.run(self.prompt_ids("Hello"), Sampling(max_new_tokens=2), reserve=need)

    @property
    def context_length(self) -> int:
        """Prompt + generated tokens the model takes (its position limit; 2048 if unknown)."""
        cfg = self.model.config.get_text_config()
        return int(getattr(cfg, "max_position_embeddings", 0) or 2048)

    @property
    def eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        return {e for e in eos + [self.tokenizer.eos_token_id] if e is not None}

    def prompt_ids(
        self, prompt: str | list[int] | list[dict[str, str]], *, chat: bool = False
    ) -> list[int]:
        """Ids of a text prompt (with the tokenizer's special tokens), of token ids as given, or
        of a conversation (``chat=True``: the chat template, a string being one user turn)."""
        if chat:
            text = self.chat_prompt(prompt)  # type: ignore[arg-type]
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        elif isinstance(prompt, str):
            ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        elif isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            ids = list(prompt)  # type: ignore[arg-type]
        else:
            raise TypeError(
                f"prompt must be a string or a list of token ids, got {type(prompt).__name__}"
            )
        if not ids:
            raise ValueError("prompt is empty")
        return ids

    def chat_prompt(self, messages: str | list[dict[str, str]]) -> str:
        """The chat template applied to ``messages`` (a string is one user message)."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not isinstance(messages, list) or not all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise TypeError(
                "messages must be a string or a list of {'role': str, 'content': str} dicts"
            )
        if not self.tokenizer.chat_template:
            raise ValueError(
                "this tokenizer has no chat template: use generate() with a plain prompt"
            )
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    @property
    def defaults(self) -> GenerationDefaults:
        """What unset sampling settings become: the model's ``generation_config``, else greedy."""
        return GenerationDefaults.of(getattr(self.model, "generation_config", None))

    def generate_kwargs(self, prompt_len: int, s: Sampling) -> dict[str, Any]:
        """``model.generate`` settings for ``s`` as given (:meth:`run` resolves it first; an
        unset temperature here is greedy): GEM ids suppressed, greedy at temperature 0,
        penalties, stop strings matched after ``prompt_len`` tokens; seeds torch if ``s.seed``.

        Every sampling knob is passed explicitly, so nothing else of the model's
        ``generation_config`` (e.g. its own ``repetition_penalty``) changes what ``s`` asks.
        """
        if s.seed is not None:
            torch.manual_seed(s.seed)
        processors: list[LogitsProcessor] = [
            SuppressTokensLogitsProcessor(self.suppress_ids, device=self.model.device)
        ]
        if s.frequency_penalty or s.presence_penalty:
            processors.append(_OpenAIPenalties(prompt_len, s.frequency_penalty, s.presence_penalty))
        kwargs: dict[str, Any] = {
            "max_new_tokens": s.max_new_tokens,
            "do_sample": not s.greedy,
            "logits_processor": LogitsProcessorList(processors),
            "repetition_penalty": s.repetition_penalty,
            "pad_token_id": self.pad_id,
            "stopping_criteria": StoppingCriteriaList(
                [_StopOnText(self.tokenizer, prompt_len, s.stop)] if s.stop else []
            ),
        }
        if self.between_tokens:
            kwargs["stopping_criteria"].append(_BetweenTokens(self.between_tokens))
        if s.greedy:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k)
        return kwargs

    @torch.inference_mode()
    def run(
        self,
        ids: list[int],
        s: Sampling,
        *,
        on_text: Callable[[str], Any] | None = None,
        cancel: threading.Event | None = None,
        cache: Any = None,
        reserve: int | None = None,
    ) -> Completion:
        """Generate after prompt ``ids`` on the calling thread, ``s``'s unset settings taken
        from :attr:`defaults`.

        ``on_text`` receives the text piece by piece (a stop string and what may still begin
        one held back); ``cancel`` stops at the next token once set; ``cache`` is a KV cache
        that already holds the first tokens of ``ids``; ``reserve``: the positions a static
        cache is sized for (at least prompt + ``max_new_tokens``).
        """
        if not ids:
            raise ValueError("prompt is empty")
        s = s.resolved(self.defaults)
        input_ids = torch.tensor([ids], device=self.model.device)
        kwargs = self.generate_kwargs(len(ids), s)
        if cancel is not None:
            kwargs["stopping_criteria"].append(_Cancelled(cancel))
        if cache is not None:
            kwargs["cache"] = cache  # transformers 5's name (``past_key_values`` is deprecated)
        streamer = _PieceStreamer(self.tokenizer, s.stop, on_text) if on_text else None
        fast: Any = nullcontext({})  # eager, or with a prefix cache: as given
        if self.static is not None and cache is None:
            if (gate := getattr(self.model, "gem_gate", None)) is not None:
                gate.plain_when_compiled = True  # compiled steps see generated ids: no GEM id
            need = max(reserve or 0, len(ids) + s.max_new_tokens)
            fast = self.static.kwargs(self.model.config, need, self.context_length)
        with fast as extra:
            out = self.model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                streamer=streamer,
                **kwargs,
                **extra,
            )
        new = out[0, len(ids) :].tolist()
        if streamer is not None:
            text, stopped = streamer.text[: streamer.sent], streamer.stopped
        else:
            text, stopped = cut_at_stop(
                self.tokenizer.decode(new, skip_special_tokens=True), s.stop
            )
        hit_eos = bool(new) and new[-1] in self.eos_ids
        finish = "stop" if stopped or hit_eos or len(new) < s.max_new_tokens else "length"
        return Completion(text, new, len(ids), len(new), finish)

    def stream(
        self, ids: list[int], s: Sampling, *, cache: Any = None
    ) -> Generator[str, None, Completion]:
        """:meth:`run` on a background thread, its text pieces yielded here; returns the
        Completion. Closing the generator early stops the generation at its next token."""
        pieces: queue.Queue[Any] = queue.Queue()
        cancel, done = threading.Event(), object()
        result: list[Any] = []

        def work() -> None:
            try:
                result.append(self.run(ids, s, on_text=pieces.put, cancel=cancel, cache=cache))
            except BaseException as exc:  # re-raised in the caller's thread below
                result.append(exc)
            pieces.put(done)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            while (item := pieces.get()) is not done:
                yield item
        finally:
            cancel.set()
            thread.join()
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]
