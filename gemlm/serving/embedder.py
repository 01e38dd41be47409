"""The batch function behind ``/v1/embeddings``: texts or token ids -> GEM embeddings.

It reproduces ``GEMModel.encode``'s inputs (default prompt, tokenizer with its special tokens,
``readout_tail`` appended by ``append_specials`` with truncation to ``max_length``), so the server
returns the vectors ``encode`` gives (to float rounding). It runs them packed
(``GEMModel.embed_packed``): a micro-batch holds texts in arrival order, and padded batches of
them would be ~40% padding (``benchmarks/serve_padding.py``). Token-id inputs (sent by
LangChain's ``OpenAIEmbeddings``) skip the tokenizer and get the same tail. Runs on the model
worker thread only: the tokenizer is not shared across threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gemlm.tokens import append_specials

if TYPE_CHECKING:
    from gemlm.model import GEMModel

Input = str | list[int]


class Embedder:
    """``embedder(inputs) -> [(unit vector float32 (D,), tokens embedded), ...]``."""

    def __init__(self, gem: GEMModel, row_tokens: int, max_tokens: int) -> None:
        self.gem, self.row_tokens, self.max_tokens = gem, row_tokens, max_tokens
        self._tail: list[int] | None = None

    def prompt(self) -> str:
        """The prefix ``encode`` adds with no prompt arguments: the config's default prompt."""
        cfg = self.gem.config
        name = cfg.default_prompt_name
        return cfg.prompts.get(name, "") if name else ""

    def sequences(self, inputs: list[Input]) -> list[list[int]]:
        """Model input ids of each input, tail (suffix + GEM tokens) appended."""
        if self._tail is None:
            self._tail = self.gem.readout_tail()
        prefix = self.prompt()
        text_at = [i for i, x in enumerate(inputs) if isinstance(x, str)]
        text_ids, _ = self.gem.tokenize_for_embedding([prefix + inputs[i] for i in text_at])
        seqs: list[list[int]] = [[] for _ in inputs]
        for i, ids in zip(text_at, text_ids, strict=True):
            seqs[i] = ids
        for i, x in enumerate(inputs):
            if not isinstance(x, str):
                seqs[i] = append_specials(list(x), self._tail, self.gem.config.max_length)[0]
        return seqs

    def __call__(self, inputs: list[Input]) -> list[tuple[np.ndarray, int]]:
        seqs = self.sequences(inputs)
        vecs = self.gem.embed_packed(seqs, self.row_tokens, self.max_tokens).numpy()
        return [(vecs[i], len(seqs[i])) for i in range(len(seqs))]
