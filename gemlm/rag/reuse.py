"""Query embedding for (almost) free: one forward gives the embedding *and* the prefill.

Under causal attention the key/value states of a token depend only on the tokens before it.
The embedding input is ``<chat header><question><readout suffix><GEM token(s)>`` and the
generation prompt is ``<chat header><question><sources...><assistant header>``: both start with
the same ``<chat header><question>`` tokens. So the embedding forward runs with a KV cache, the
cache is cropped back to that common prefix, and generation prefills only the rest.

The one thing that cannot be shared is the readout tail (suffix + specials): it sits where the
sources start in the generation prompt. Its cost is a forward over ~1-10 extra tokens, plus one
extra call. What it does cost on CPU (``benchmarks/rag_reuse.py``): the rest of the prompt is
then prefilled *from a cache*, and a query block that does not start at key 0 needs an explicit
causal mask, which runs torch's SDPA slower than the ``is_causal`` kernel of a one-call prefill;
on this CPU that costs more than the ~40 question tokens it saves, so ``RagEngine`` makes it
opt-in. (The model's own query prompt, e.g. PromptEOL ``This sentence : "``, cannot come
first either: the chat template starts with its own header, so the reuse layout embeds the
question after the chat header instead.)
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from typing import Any

import torch
from transformers import DynamicCache, TextIteratorStreamer

from .. import masking


@dataclass
class QueryForward:
    """The result of the embedding forward: the vector and the cache of its text tokens."""

    embedding: torch.Tensor  # (D,) float32, unit-norm when config.normalize
    cache: DynamicCache | None
    text_ids: list[int]  # the embedded tokens before the readout tail (the shareable part)


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two id lists.

    >>> common_prefix([1, 2, 3], [1, 2, 4, 5])
    2
    """
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@torch.inference_mode()
def embed_with_cache(model: Any, text_ids: list[int], keep_cache: bool = True) -> QueryForward:
    """Run the backbone on ``text_ids + readout tail`` once; read the GEM embedding there.

    ``GEMModel.embed_ids`` for one sequence (its mask and readout), with a KV cache kept.
    """
    k = model.config.num_special_tokens
    ids = list(text_ids) + model.readout_tail()
    segments = masking.batch_segments([masking.Layout(prefix=len(ids) - k, specials=k)])  # (1, T)
    cache = DynamicCache(config=model.model.config) if keep_cache else None
    out = model.model.get_decoder()(
        input_ids=torch.tensor([ids], device=model.device),
        attention_mask=model.embedding_mask(segments).to(model.device),
        past_key_values=cache,
        use_cache=keep_cache,
    )
    emb = model.readout(out.last_hidden_state[:, -k:])[0]  # (D,)
    return QueryForward(emb.cpu(), out.past_key_values if keep_cache else None, list(text_ids))


def prepare_cache(forward: QueryForward | None, prompt_ids: list[int]) -> tuple[Any, int]:
    """Crop the embedding cache to the prefix it shares with ``prompt_ids``; (cache, reused)."""
    if forward is None or forward.cache is None:
        return None, 0
    shared = min(common_prefix(forward.text_ids, prompt_ids), len(prompt_ids) - 1)
    if shared <= 0:
        return None, 0
    extra = forward.cache.get_seq_length() - shared
    if extra > 0:  # a negative argument removes tokens, in old and new transformers alike
        forward.cache.crop(-extra)
    return forward.cache, shared


@torch.inference_mode()
def generate_ids(
    model: Any,
    prompt_ids: list[int],
    cache: Any = None,
    streamer: TextIteratorStreamer | None = None,
    **gen: Any,
) -> list[int]:
    """Generated token ids after ``prompt_ids``; ``cache`` holds a prefix already prefilled."""
    input_ids = torch.tensor([prompt_ids], device=model.device)
    extra = {"past_key_values": cache} if cache is not None else {}
    out = model.model.generate(
        input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer, **extra, **gen
    )
    return out[0, len(prompt_ids) :].tolist()


def stream_ids(model: Any, prompt_ids: list[int], cache: Any = None, **gen: Any):
    """Yield decoded text pieces while a background thread generates; returns the ids."""
    streamer = TextIteratorStreamer(model.tokenizer, skip_prompt=True, skip_special_tokens=True)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["ids"] = generate_ids(model, prompt_ids, cache, streamer=streamer, **gen)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc
            streamer.end()

    thread = Thread(target=run, daemon=True)
    thread.start()
    yield from streamer
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["ids"]
