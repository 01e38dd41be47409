"""The embedding engine: texts or token ids -> model input -> last-layer special states -> vector.

Every embedding in gemlm goes through here: ``GEMModel.encode``, the server's ``/v1/embeddings``
(token-id inputs too), RAG's query and passages, and the KV-cache-keeping query forward RAG's
``reuse`` mode prefills generation from. Training builds its batches in ``training/collator.py``
but reads them out with the same :func:`readout`.

The model input is the config's :class:`gemlm.embedding_format.EmbeddingFormat` (prompt + text,
tokenizer, truncation that keeps the readout tail), which training builds its rows with too;
:meth:`EmbeddingEngine.inputs` hands texts and token ids to it, and one
:meth:`EmbeddingEngine.embed` runs three forwards:

- padded: length-sorted batches, a 2-D padding mask for k = 1 (the stock causal path) or the
  4-D GEM mask for k > 1 (the specials do not see each other);
- packed: texts end to end in rows with a block-diagonal GEM mask (``gemlm.packing``), no padding;
- gated: a ``special_only`` adapter runs the text as the base model (adapters off, into a KV
  cache) and then the k specials alone over it, the specials of several padded batches in one
  call over their stacked caches (:func:`gemlm.adapter.grouped_head_tail_forward`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import DynamicCache

from . import masking, packing
from .adapter import grouped_head_tail_forward
from .embedding_format import EmbeddingFormat, Input

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .config import GEMConfig


def readout(specials: torch.Tensor, mode: str = "mean", normalize: bool = True) -> torch.Tensor:
    """(B, k, D) last-layer special states -> (B, D) float32 (mean) or (B, k*D) (concat).

    The GEM readout, used by inference and by training's contrastive loss alike.

    >>> readout(torch.tensor([[[3.0, 4.0], [3.0, 4.0]]]))
    tensor([[0.6000, 0.8000]])
    >>> readout(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), mode="concat", normalize=False)
    tensor([[1., 0., 0., 1.]])
    """
    specials = specials.float()
    emb = specials.mean(1) if mode == "mean" else specials.flatten(1)  # (B, D) or (B, k*D)
    return F.normalize(emb, dim=-1) if normalize else emb


@dataclass
class QueryForward:
    """One text embedded with its KV cache kept, for generation to continue from."""

    embedding: torch.Tensor  # (D,) float32, unit-norm when config.normalize
    cache: DynamicCache | None
    text_ids: list[int]  # the embedded tokens before the readout tail (the shareable part)


def tail_groups(chunks: list[list[int]], lengths: list[int], budget: int) -> list[list[list[int]]]:
    """Consecutive chunks of input indices (longest inputs first) grouped while the group's
    rows x its longest input stay within ``budget`` (a stacked KV cache's positions); a chunk
    over it alone is a group alone.

    >>> tail_groups([[0, 1], [2, 3], [4]], [9, 8, 5, 4, 2], budget=40)  # 4 x 9, then 5 x 9
    [[[0, 1], [2, 3]], [[4]]]
    """
    groups: list[list[list[int]]] = []
    rows = longest = 0
    for chunk in chunks:
        width = max(longest, *(lengths[i] for i in chunk))
        if groups and (rows + len(chunk)) * width <= budget:
            groups[-1].append(chunk)
            rows, longest = rows + len(chunk), width
        else:
            groups.append([chunk])
            rows, longest = len(chunk), max(lengths[i] for i in chunk)
    return groups


class EmbeddingEngine:
    """The GEM embedding of a Hugging Face causal LM whose tokenizer holds the special tokens."""

    # a gated model's batches share one call for their specials while their stacked text cache
    # holds at most this many positions (rows x longest text; SmolLM2 fp32: 46 KB a position)
    tail_tokens = 4096

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: GEMConfig
    ) -> None:
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.special_ids: list[int] = config.embedding_format.special_ids(tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id: int = pad if pad is not None else (tokenizer.eos_token_id or 0)

    # ------------------------------------------------------------------ sizes and prompts
    @property
    def k(self) -> int:
        return self.config.num_special_tokens

    @property
    def dim(self) -> int:
        """Length of one embedding: the hidden size (k times it for the concat readout)."""
        hidden = self.model.config.get_text_config().hidden_size
        return hidden * (self.k if self.config.readout == "concat" else 1)

    @property
    def format(self) -> EmbeddingFormat:
        """What the model embeds (the config's, read afresh: its fields may be set)."""
        return self.config.embedding_format

    @property
    def suffix_ids(self) -> list[int]:
        """``config.readout_suffix`` tokenized: fixed text between a text and the specials."""
        return self.format.suffix_ids(self.tokenizer)

    @property
    def tail(self) -> list[int]:
        """Ids appended after every embedded text, never truncated: the suffix, then the k
        specials (:meth:`gemlm.embedding_format.EmbeddingFormat.tail_ids`)."""
        return self.format.tail_ids(self.tokenizer)

    def prompt(self, name: str | None = None, prompt: str | None = None) -> str:
        """The text put before each input: ``prompt`` as given, else the config's prompt
        ``name`` (ValueError if it has none), else its default prompt, else nothing."""
        return self.format.prompt(name, prompt, strict=True)

    def text_room(self, prompt: str = "") -> int:
        """Text tokens that fit the window after ``prompt`` (and BOS) and before the tail."""
        return self.format.text_room(self.tokenizer, prompt=prompt)

    # ------------------------------------------------------------------ model input
    def inputs(self, items: list[Input], prompt: str = "") -> tuple[list[list[int]], int]:
        """Model input of each item, and how many were cut to ``config.max_length``."""
        built = self.format.build(items, tokenizer=self.tokenizer, prompt=prompt)
        return built.ids, built.cut

    def measured_inputs(
        self, items: list[Input], prompt: str = ""
    ) -> tuple[list[list[int]], list[int]]:
        """Model input of each item, and the tokens each needs before any cut (text + tail).

        A text becomes ``prompt + text`` tokenized with the tokenizer's own special tokens; a
        list of token ids is taken as is. Both get the tail appended; a text longer than
        ``config.max_length`` allows loses its end, never the tail
        (:meth:`gemlm.embedding_format.EmbeddingFormat.build`).
        """
        built = self.format.build(items, tokenizer=self.tokenizer, prompt=prompt)
        return built.ids, built.lengths

    def embed_texts(
        self,
        texts: list[str],
        prompt: str = "",
        *,
        batch_size: int = 32,
        padding_side: str = "right",
        progress: bool = False,
    ) -> torch.Tensor:
        """(N, D) float32 embeddings of texts; warns when some were truncated."""
        ids, truncated = self.inputs(texts, prompt)  # type: ignore[arg-type]
        if truncated:
            warnings.warn(
                f"{truncated} of {len(texts)} texts exceeded max_length={self.config.max_length} "
                "tokens and were truncated (the special tokens are kept)",
                stacklevel=3,
            )
        return self.embed(ids, batch_size=batch_size, padding_side=padding_side, progress=progress)

    # ------------------------------------------------------------------ forwards
    @property
    def gated(self) -> bool:
        """True for a gated adapter (:attr:`gemlm.kind.AdapterScope.gated`): the text runs as
        the base model, then the specials over its cache."""
        return self.config.adapter_scope.gated

    def embed(
        self,
        batch: list[list[int]],
        *,
        packed: bool = False,
        batch_size: int = 32,
        padding_side: str = "right",
        row_tokens: int = 256,
        max_tokens: int = 2048,
        progress: bool = False,
    ) -> torch.Tensor:
        """Model inputs (each ending with the tail) -> (N, D) float32 embeddings in input order.

        ``packed``: rows of ``row_tokens`` (wider for a longer text), forwards of at most
        ``max_tokens`` tokens; else length-sorted padded batches of ``batch_size``. A gated
        adapter always runs padded batches in two calls, its batches' specials sharing one call
        while their stacked text cache fits ``tail_tokens`` (:func:`tail_groups`).
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not batch:
            return torch.empty(0, self.dim)
        if packed and not self.gated:
            return self.forward_packed(batch, row_tokens, max_tokens)
        order = sorted(range(len(batch)), key=lambda i: -len(batch[i]))  # longest first
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        groups = (  # chunks whose specials share one tail call, or a chunk alone
            tail_groups(chunks, [len(ids) for ids in batch], self.tail_tokens)
            if self.gated
            else [[chunk] for chunk in chunks]
        )
        out: list[torch.Tensor] = [torch.empty(0)] * len(batch)
        for group in tqdm(groups, desc="Batches", disable=not progress):
            batches = [[batch[i] for i in chunk] for chunk in group]
            if self.gated:
                vecs = self.forward_gated(batches)
            else:
                vecs = self.forward_padded(batches[0], padding_side)
            for i, v in zip([i for chunk in group for i in chunk], vecs, strict=True):
                out[i] = v
        return torch.stack(out)

    def _layouts(self, batch: list[list[int]]) -> list[masking.Layout]:
        return [masking.Layout(prefix=len(ids) - self.k, specials=self.k) for ids in batch]

    def _ids(self, segments: torch.Tensor, batch: list[list[int]]) -> torch.Tensor:
        """(B, T) input ids laid out as ``segments``, padding filled with the pad id."""
        input_ids = torch.full(segments.shape, self.pad_id, dtype=torch.long)
        input_ids[segments != masking.PAD] = torch.tensor([t for ids in batch for t in ids])
        return input_ids

    def mask(self, segments: torch.Tensor) -> torch.Tensor:
        """k = 1: the stock 2-D padding mask (B, T); k > 1: the 4-D GEM mask (B, 1, T, T)."""
        if self.k == 1:
            return (segments != masking.PAD).long()
        return masking.gem_attention_mask(segments, self.model.dtype)

    def _readout(self, specials: torch.Tensor) -> torch.Tensor:
        return readout(specials, self.config.readout, self.config.normalize).cpu()

    @torch.inference_mode()
    def forward_padded(self, batch: list[list[int]], padding_side: str = "right") -> torch.Tensor:
        """One padded forward of the backbone (no lm_head) -> (B, D)."""
        if self.gated:
            return self.forward_gated([batch])
        segments = masking.batch_segments(self._layouts(batch), padding_side=padding_side)
        device = self.model.device
        hidden = self.model.get_decoder()(
            input_ids=self._ids(segments, batch).to(device),
            attention_mask=self.mask(segments).to(device),
            position_ids=masking.position_ids(segments).to(device),
            use_cache=False,
        ).last_hidden_state  # (B, T, D)
        return self._readout(masking.special_states(hidden, segments.to(device)))

    @torch.inference_mode()
    def forward_gated(self, batches: list[list[list[int]]]) -> torch.Tensor:
        """A gated adapter in two calls that skip the LoRA at the text -> (sum B_i, D).

        The gate makes every text position the base model's, so each padded batch's text runs
        first with no special token in it (adapters off, left-padded, into a KV cache), then the
        k specials of all the batches run over those caches in one call (adapters on): the
        states of one gated forward, without computing and then masking the LoRA deltas at
        every text position. Training's contrastive stage runs the same two calls
        (:func:`gemlm.adapter.head_tail_forward`).
        """
        device, parts = self.model.device, []
        for batch in batches:
            segments = masking.batch_segments(self._layouts(batch))  # (B, T) right-padded
            index, head = masking.head_tail_index(segments)
            ids = masking.relay(self._ids(segments, batch), index, self.pad_id).to(device)
            parts.append((ids, masking.relay(segments, index, masking.PAD).to(device), head))
        hidden = grouped_head_tail_forward(self.model.get_decoder(), parts, self.model.dtype)
        return self._readout(torch.cat(hidden))  # (sum B_i, k, D) -> (sum B_i, D)

    @torch.inference_mode()
    def forward_packed(
        self, batch: list[list[int]], row_tokens: int = 256, max_tokens: int = 2048
    ) -> torch.Tensor:
        """Texts packed end to end, block-diagonal GEM mask, no padding -> (N, D) in order."""
        p = packing.pack(batch, self.k, row_tokens, self.pad_id)
        rows, width = p.input_ids.shape
        per = max(1, max_tokens // width)  # rows per forward
        mask = p.attention_mask(self.model.dtype)  # (R, 1, C, C)
        backbone, device = self.model.get_decoder(), self.model.device
        hidden = torch.cat(
            [
                backbone(
                    input_ids=p.input_ids[s : s + per].to(device),
                    attention_mask=mask[s : s + per].to(device),
                    position_ids=p.positions[s : s + per].to(device),
                    use_cache=False,
                ).last_hidden_state
                for s in range(0, rows, per)
            ]
        )  # (R, C, D)
        return self._readout(p.special_states(hidden))

    @torch.inference_mode()
    def forward_keep_cache(self, text_ids: list[int]) -> QueryForward:
        """One text (tail appended here) in one forward that keeps its KV cache -> (D,).

        The text's cache entries are those of the plain causal LM (a gated adapter leaves the
        text positions to the base model), so generation may continue from them.
        """
        built = self.format.build([text_ids], tokenizer=self.tokenizer)
        if built.cut:
            raise ValueError(
                f"the text is {len(text_ids)} tokens; the embedding window holds "
                f"{self.config.max_length - built.tail} (max_length={self.config.max_length})"
            )
        ids = built.ids[0]
        segments = masking.batch_segments(self._layouts([ids]))  # (1, T)
        device = self.model.device
        cache = DynamicCache(config=self.model.config)
        out = self.model.get_decoder()(
            input_ids=torch.tensor([ids], device=device),
            attention_mask=self.mask(segments).to(device),
            position_ids=masking.position_ids(segments).to(device),
            cache=cache,
            use_cache=True,
        )
        emb = self._readout(out.last_hidden_state[:, -self.k :])[0]  # (D,)
        return QueryForward(emb, cache, list(text_ids))  # filled in place
