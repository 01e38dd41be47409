"""Generation jobs for the worker thread: prompt preparation, one completion, one stream.

Non-streaming choices use ``GEMModel.complete`` as is. Streaming needs the token count and the
finish reason that ``GEMModel.stream`` does not report, and must stop when the client leaves, so
it drives ``model.generate`` with ``GEMModel.generation_kwargs`` (the same sampling, the same GEM
token suppression and stop-string criterion as ``complete``) and a streamer that records ids.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

from .errors import APIError

if TYPE_CHECKING:
    from gemlm.model import Completion, GEMModel


@dataclass
class Sampling:
    """What a choice is generated with (``max_tokens`` already resolved against the context)."""

    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str] | None
    seed: int | None

    def for_choice(self, index: int) -> Sampling:
        """Choice ``index`` of ``n``: seed + index, so seeded choices differ yet reproduce."""
        if self.seed is None or index == 0:
            return self
        seed = (self.seed + index) % 2**64
        return Sampling(self.max_tokens, self.temperature, self.top_p, self.stop, seed)


def text_prompt_ids(gem: GEMModel, text: str) -> list[int]:
    """A completion prompt's ids, as ``GEMModel.complete`` tokenizes a text prompt."""
    return gem.tokenizer(text, add_special_tokens=True)["input_ids"]


def chat_prompt_ids(gem: GEMModel, messages: list[dict[str, str]]) -> list[int]:
    """The chat template applied to ``messages``; a template that rejects them is a 400."""
    try:
        text = gem.chat_prompt(messages)
    except Exception as exc:  # jinja raises its own errors for e.g. non-alternating roles
        raise APIError(
            400, f"cannot apply the chat template: {exc}", param="messages", code="invalid_value"
        ) from exc
    return gem.tokenizer(text, add_special_tokens=False)["input_ids"]


def complete(gem: GEMModel, ids: list[int], s: Sampling) -> Completion:
    return gem.complete(
        ids,
        max_new_tokens=s.max_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        stop=s.stop,
        seed=s.seed,
    )


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)


class _PieceStreamer(TextStreamer):
    """Hands finished text to ``emit``, holding back what may begin a stop string, and records
    the generated ids."""

    def __init__(self, gem: GEMModel, stop: list[str] | None, emit: Callable[[str], None]):
        super().__init__(gem.tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.stops, self.emit = stop or [], emit
        self.hold = max((len(x) for x in self.stops), default=1) - 1
        self.ids: list[int] = []
        self.text, self.sent, self.stopped = "", 0, False

    def put(self, value: torch.Tensor) -> None:
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            self.ids.extend(value.reshape(-1).tolist())
        super().put(value)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if self.stopped:
            return
        self.text += text
        hits = [self.text.find(s) for s in self.stops if s in self.text]
        if hits:
            self.stopped = True
            ready = min(hits)
        else:
            ready = len(self.text) if stream_end else len(self.text) - self.hold
        if ready > self.sent:
            self.emit(self.text[self.sent : ready])
            self.sent = ready


def stream(
    gem: GEMModel,
    ids: list[int],
    s: Sampling,
    emit: Callable[[str], None],
    cancel: threading.Event,
) -> tuple[int, str]:
    """Generate on the calling (worker) thread, handing text pieces to ``emit``.

    Returns (completion tokens, finish reason: "stop" for EOS or a stop string, else "length").
    """
    input_ids = torch.tensor([ids], device=gem.device)
    kwargs = gem.generation_kwargs(len(ids), s.max_tokens, s.temperature, s.top_p, s.stop, s.seed)
    criteria = kwargs.pop("stopping_criteria", None) or StoppingCriteriaList()
    criteria.append(_Cancelled(cancel))
    streamer = _PieceStreamer(gem, s.stop, emit)
    with torch.inference_mode():
        gem.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            streamer=streamer,
            stopping_criteria=criteria,
            **kwargs,
        )
    new = streamer.ids
    eos = gem.model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) | {gem.tokenizer.eos_token_id}
    hit_eos = bool(new) and new[-1] in eos_ids
    finish = "stop" if streamer.stopped or hit_eos or len(new) < s.max_tokens else "length"
    return len(new), finish
