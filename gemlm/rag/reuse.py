"""Query embedding for (almost) free: one forward gives the embedding *and* the prefill.

Under causal attention the key/value states of a token depend only on the tokens before it.
The embedding input is ``<chat header><question><readout suffix><GEM token(s)>`` and the
generation prompt is ``<chat header><question><sources...><assistant header>``: both start with
the same ``<chat header><question>`` tokens. So the embedding forward runs with a KV cache
(``GEMModel.embed_keep_cache``), the cache is cropped back to that common prefix, and generation
prefills only the rest.

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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemlm.embedding import QueryForward


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
