"""The batch function behind ``/v1/embeddings``: texts or token ids -> GEM embeddings.

It reproduces ``GEMModel.encode`` step by step (default prompt, tokenizer with its special tokens,
``readout_tail`` appended by ``append_specials`` with truncation to ``max_length``, length-sorted
batches of ``batch_size`` through ``embed_ids``), so the server returns the vectors ``encode``
gives. Token-id inputs (sent by LangChain's ``OpenAIEmbeddings``) skip the tokenizer and get the
same tail. Runs on the model worker thread only: the tokenizer is not shared across threads.
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

    def __init__(self, gem: GEMModel, batch_size: int = 32) -> None:
        self.gem, self.batch_size = gem, batch_size
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
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))  # longest first, as encode
        out: list[np.ndarray] = [np.empty(0, np.float32)] * len(seqs)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            vecs = self.gem.embed_ids([seqs[i] for i in chunk]).numpy()
            for i, v in zip(chunk, vecs, strict=True):
                out[i] = v
        return [(out[i], len(seqs[i])) for i in range(len(seqs))]
