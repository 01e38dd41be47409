"""Adding the k GEM special tokens to a tokenizer + model (where they go in an embedded text is
:mod:`gemlm.embedding_format`)."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def add_gem_tokens(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, tokens: list[str]
) -> list[int]:
    """Register ``tokens`` as special tokens (never split), grow the embeddings, init new rows.

    New rows (input embeddings, and the output head when untied) are set to the mean of the
    pre-existing rows: the new token starts as an "average token", inside the distribution the
    network has seen, instead of a random vector the first layers were never trained on. Since
    generation suppresses these ids, their output rows never affect generated text.

    Returns the token ids, in order. Idempotent: tokens already present are reused.
    """
    old_vocab = len(tokenizer)
    tokenizer.add_special_tokens(
        {"additional_special_tokens": tokens}, replace_extra_special_tokens=False
    )
    ids = tokenizer.convert_tokens_to_ids(tokens)
    emb = model.get_input_embeddings()
    n_rows = emb.weight.shape[0]
    if len(tokenizer) > n_rows:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    new_ids = [i for i in ids if i >= old_vocab]
    if new_ids:
        known = min(old_vocab, n_rows)
        with torch.no_grad():
            for matrix in _embedding_matrices(model):
                matrix[new_ids] = matrix[:known].float().mean(0, keepdim=True).to(matrix.dtype)
    return ids


def _embedding_matrices(model: PreTrainedModel) -> list[torch.Tensor]:
    inp = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    mats = [inp]
    if out is not None and out.weight.data_ptr() != inp.data_ptr():
        mats.append(out.weight)
    return mats
