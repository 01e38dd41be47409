"""Training text as tokens: LM blocks for the generative loss, one sequence per text for the
contrastive loss. Reading corpora is :mod:`gemlm.corpus`.

``tokenize_and_chunk`` packs texts into equal-length token blocks; ``tokenize_texts`` keeps one
(truncated) token sequence per text, built by the model's
:class:`~gemlm.embedding_format.EmbeddingFormat` less its tail (the collator adds it).
"""

from __future__ import annotations

from typing import Any

import datasets

from ..corpus import TEXT, missing_column
from ..embedding_format import EmbeddingFormat

IDS = "input_ids"
IDS_FEATURES = datasets.Features({IDS: datasets.List(datasets.Value("int32"))})


# --------------------------------------------------------------------------- tokenizing


def tokenize_and_chunk(
    ds: datasets.Dataset,
    tokenizer: Any,
    seq_len: int,
    *,
    add_eos: bool = True,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Blocks of exactly ``seq_len`` token ids from the concatenated texts (``input_ids``).

    Each text is tokenized without special tokens and followed by ``eos_token_id`` (when
    ``add_eos`` and the tokenizer has one). The stream is cut per map batch of 1000 texts, so
    up to ``seq_len - 1`` tokens per batch are dropped.
    """
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    _require_text(ds)
    eos_id = tokenizer.eos_token_id if add_eos else None
    return ds.map(
        _chunk_batch,
        batched=True,
        remove_columns=ds.column_names,
        features=IDS_FEATURES,
        num_proc=num_proc,
        fn_kwargs={"tokenizer": tokenizer, "seq_len": seq_len, "eos_id": eos_id},
        desc=f"Tokenizing into {seq_len}-token blocks",
    )


def tokenize_texts(
    ds: datasets.Dataset,
    tokenizer: Any,
    max_len: int,
    *,
    prompt: str = "",
    add_special_tokens: bool = False,
    num_proc: int | None = None,
    fmt: EmbeddingFormat | None = None,
    role: str | None = None,
) -> datasets.Dataset:
    """One ``input_ids`` row per text, truncated to ``max_len``; texts under 2 tokens dropped.

    Each row is what ``fmt.build`` makes of the text as ``role`` (BOS + the role's prompt +
    text), cut to ``max_len`` and without the tail, which the contrastive collator appends with
    the same builder: what ``GEMModel.encode`` feeds the model. Without ``fmt``, a format of
    ``prompt`` alone, with the tokenizer's BOS only when ``add_special_tokens``.
    """
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2, got {max_len}")
    _require_text(ds)
    if fmt is None:
        fmt = EmbeddingFormat.of_prompts(prompt, add_special_tokens=add_special_tokens)
    return ds.map(
        _truncate_batch,
        batched=True,
        remove_columns=ds.column_names,
        features=IDS_FEATURES,
        num_proc=num_proc,
        fn_kwargs={"tokenizer": tokenizer, "max_len": max_len, "fmt": fmt, "role": role},
        desc=f"Tokenizing texts (max {max_len} tokens)",
    )


def _require_text(ds: datasets.Dataset) -> None:
    if TEXT not in ds.column_names:
        raise missing_column("dataset", TEXT, ds.column_names)


def _token_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]


def _chunk_batch(
    batch: dict[str, list], tokenizer: Any, seq_len: int, eos_id: int | None
) -> dict[str, list[list[int]]]:
    stream: list[int] = []
    for ids in _token_ids(tokenizer, batch[TEXT]):
        stream.extend(ids)
        if eos_id is not None:
            stream.append(eos_id)
    n_blocks = len(stream) // seq_len
    return {IDS: [stream[i * seq_len : (i + 1) * seq_len] for i in range(n_blocks)]}


def _truncate_batch(
    batch: dict[str, list], tokenizer: Any, max_len: int, fmt: EmbeddingFormat, role: str | None
) -> dict[str, list[list[int]]]:
    built = fmt.build(batch[TEXT], role, tokenizer=tokenizer, room=max_len, tail=False)
    return {IDS: [x for x, n in zip(built.ids, built.lengths, strict=True) if n >= 2]}
