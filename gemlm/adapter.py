"""``adapter_scope="special_only"``: LoRA deltas that act only at the GEM token positions.

Every LoRA layer of a peft model computes ``base(x) + B(A(x)) * s``. ``SpecialGate`` multiplies
``B(A(x))`` by a (B, T, 1) mask that is 1 at special-token positions and 0 elsewhere, and when an
input holds no special token at all it switches the adapters off, so the frozen base layers run
alone. That includes peft's trainable rows of the GEM tokens (the embedding and the tied LM
head): peft rebuilds the whole (vocab, D) matrix on every forward they are on in (a ~113 MB
copy, ~90 ms on 2 cores, per decoded token for SmolLM2 in fp32); switched off they are the
base layer's own lookup and matmul, and with GEM tokens in the input the gate's embedding
lookup writes the trained rows at the GEM positions only (:func:`embedding_with_rows`).
Consequences, all tested:

- an input without special tokens gives logits bit-identical to the base model's, the GEM ids'
  logits included;
- in ``text <specials>`` every text position, and so its key/value cache, is the base model's:
  the forward that embeds a prompt can also serve its generation.

The mask is set by a pre-hook on the decoder from its ``input_ids``, so it holds for the whole
forward, including activation-checkpointing recomputation and cached generation steps.
"""

from __future__ import annotations

import types
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from . import masking

ADAPTER_DIR = "adapter"  # subfolder of a gemlm folder holding the peft files of a gated adapter


class SpecialGate:
    """Attach to a peft LoRA model; gates every LoRA delta to the ``special_ids`` positions.

    The gate registers itself as ``peft_model.gem_gate`` (see :func:`is_gated`). Whether a model
    *embeds* gated is its config's ``adapter_scope`` (``gemlm.kind``), set with the gate.
    """

    def __init__(self, peft_model: nn.Module, special_ids: list[int]) -> None:
        from peft.tuners.lora import LoraLayer
        from peft.tuners.trainable_tokens import TrainableTokensLayer

        self.special_ids = torch.tensor(special_ids, dtype=torch.long)
        if not any(isinstance(m, LoraLayer) for m in peft_model.modules()):
            raise ValueError("special_only needs a LoRA model: no LoRA layers found")
        # what the gate switches off on an input without special tokens: LoRA deltas and the
        # GEM tokens' trainable rows
        self.layers = [
            m for m in peft_model.modules() if isinstance(m, LoraLayer | TrainableTokensLayer)
        ]
        lora = [m for m in self.layers if isinstance(m, LoraLayer)]
        self.lookups = [  # GEM rows in the input embedding: set sparsely, not by a full merge
            m
            for m in self.layers
            if isinstance(m, TrainableTokensLayer) and isinstance(m.base_layer, nn.Embedding)
        ]
        for layer in self.lookups:
            layer.forward = types.MethodType(_sparse_rows_forward, layer)
        self.mask: torch.Tensor | None = None  # (B, T, 1) bool, set per decoder forward
        # set by gemlm's compiled decoding (gemlm.static_decoding), whose compiled steps only
        # ever see generated tokens, never a GEM id (the engine suppresses them): there the
        # adapters are off without the data-dependent check, which would break the graph
        self.plain_when_compiled = False
        self.handles = [
            peft_model.get_decoder().register_forward_pre_hook(self._set_mask, with_kwargs=True)
        ]
        for layer in lora:
            for lora_b in layer.lora_B.values():
                self.handles.append(lora_b.register_forward_hook(self._gate))
        peft_model.gem_gate = self

    def _set_mask(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if self.plain_when_compiled and torch.compiler.is_compiling():
            self.mask, enabled = None, False  # a compiled decode step: no GEM id (see __init__)
        elif ids is None:
            self.mask = None  # inputs_embeds only: _gate refuses to guess
            enabled = True
        else:
            self.mask = torch.isin(ids, self.special_ids.to(ids.device)).unsqueeze(-1)
            enabled = bool(self.mask.any())
        for layer in self.layers:  # no special token: the exact base computation
            layer._disable_adapters = not enabled

    def _gate(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            raise ValueError(
                "adapter_scope='special_only' needs input_ids to find the special tokens; "
                "inputs_embeds alone is not supported"
            )
        return output * self.mask.to(output.dtype)  # (B, T, out) * (B, T, 1)

    @property
    def attached(self) -> bool:
        return bool(self.handles)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        for layer in self.layers:
            layer._disable_adapters = False
        for layer in self.lookups:
            del layer.forward  # back to the class's (peft's) forward


def embedding_with_rows(layer: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """What peft's trainable-token embedding computes, without rebuilding its (vocab, D) matrix:
    the base layer's lookup (B, T, D) of ``ids`` (B, T), then each active adapter's trained row
    written at the positions of its tokens (scaled as the base layer scales, e.g. Gemma's).
    Equal values and gradients (tested)."""
    out = layer.base_layer(ids)
    scale = layer._get_embed_scale()
    for name in layer.active_adapters:
        tokens = torch.tensor(layer.token_indices[name], device=ids.device)  # (n,)
        hit = ids.unsqueeze(-1) == tokens  # (B, T, n)
        if not bool(hit.any()):
            continue
        b, t, which = hit.nonzero(as_tuple=True)
        rows = layer.trainable_tokens_delta[name][which].to(out.dtype)  # (m, D)
        if scale is not None:
            rows = rows * scale.to(out.dtype)
        out = out.index_put((b, t), rows)  # out of place: autograd reaches the delta
    return out


def _sparse_rows_forward(self: nn.Module, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    """Bound as a trainable-token embedding's own ``forward`` (a method, so a deep copy follows
    its layer): :func:`embedding_with_rows` while the adapter is on and unmerged, else peft's."""
    if self.disable_adapters or self.merged or not self.active_adapters or args or kwargs:
        return type(self).forward(self, x, *args, **kwargs)
    return embedding_with_rows(self, x)


def is_gated(model: nn.Module) -> bool:
    """True when a :class:`SpecialGate` is attached to ``model``."""
    gate = getattr(model, "gem_gate", None)
    return isinstance(gate, SpecialGate) and gate.attached


def head_tail_forward(
    backbone: nn.Module,
    input_ids: torch.Tensor,
    segments: torch.Tensor,
    head: int,
    mask_dtype: torch.dtype,
) -> torch.Tensor:
    """Last-layer states (B, W, D) of the tail columns ``[head:]`` of a head/tail batch
    (:func:`gemlm.masking.head_tail_index`), computed in two calls.

    The head (text before the specials, left-padded) runs without autograd into a KV cache:
    with a gated adapter it holds no special token, so it is the frozen base forward and has no
    gradient to give. The tail (specials + suffix) then runs over that cache with the GEM mask
    and, under grad mode, is the only part autograd records. The result equals one forward over
    the whole rows (tested), at the cost of a no-grad pass over the head.
    """
    return grouped_head_tail_forward(backbone, [(input_ids, segments, head)], mask_dtype)[0]


HeadTail = tuple[torch.Tensor, torch.Tensor, int]  # (B, H + W) ids, (B, H + W) segments, H


def grouped_head_tail_forward(
    backbone: nn.Module, batches: list[HeadTail], mask_dtype: torch.dtype
) -> list[torch.Tensor]:
    """:func:`head_tail_forward` of several head/tail batches: a head call each, then *one*
    tail call for all their rows -> each batch's (B_i, W_i, D).

    A tail call reads every weight for a few tokens a row, so one call for the rows of several
    batches pays that once. Each batch's cache is left-padded to the longest head (zeros, which
    the mask hides: left padding moves no position id) and the caches are stacked.
    """
    H = max(head for _, _, head in batches)
    W = max(ids.shape[1] - head for ids, _, head in batches)
    caches, ids, segs = [], [], []
    for input_ids, segments, head in batches:
        cache = DynamicCache(config=backbone.config)
        if head:
            with torch.no_grad():
                backbone(
                    input_ids=input_ids[:, :head],
                    attention_mask=(segments[:, :head] != masking.PAD).long(),
                    position_ids=masking.position_ids(segments)[:, :head],
                    cache=cache,
                    use_cache=True,
                )
        caches.append((cache, head, len(input_ids)))
        pad = (H - head, W - (input_ids.shape[1] - head))  # (left, right)
        ids.append(F.pad(input_ids, pad))
        segs.append(F.pad(segments, pad, value=masking.PAD))
    segments = torch.cat(segs)  # (sum B_i, H + W)
    cache = caches[0][0] if len(batches) == 1 else stack_caches(caches, H, backbone.config)
    visible = masking.visibility(segments)[:, H:]  # (sum B_i, W, H + W)
    hidden = backbone(
        input_ids=torch.cat(ids)[:, H:],
        attention_mask=masking.additive_mask(visible, mask_dtype),
        position_ids=masking.position_ids(segments)[:, H:],
        cache=cache,
        use_cache=True,
    ).last_hidden_state
    parts = hidden.split([rows for *_, rows in caches])
    return [part[:, : x.shape[1] - head] for part, (x, _, head) in zip(parts, batches, strict=True)]


def stack_caches(
    caches: list[tuple[DynamicCache, int, int]], width: int, config: Any
) -> DynamicCache:
    """Caches of (cache, its length, its rows) -> one cache of ``width`` positions over all
    rows, each left-padded with zeros. A cache of length 0 (no head call) is all zeros."""
    filled = next((c for c, n, _ in caches if n), None)
    out = DynamicCache(config=config)
    if filled is None:  # no text anywhere: the tails see only themselves
        return out

    def stacked(i: int, states: str) -> torch.Tensor:  # layer i's keys or values, all rows
        ref = getattr(filled.layers[i], states)  # (B, heads, T, head_dim)
        return torch.cat(
            [
                F.pad(getattr(c.layers[i], states), (0, 0, width - n, 0))
                if n
                else ref.new_zeros(rows, ref.shape[1], width, ref.shape[3])
                for c, n, rows in caches
            ]
        )

    for i in range(len(filled.layers)):
        out.update(stacked(i, "keys"), stacked(i, "values"), i)
    return out


def save_gated_adapter(peft_model: nn.Module, folder: Path) -> None:
    """The peft files only (LoRA A/B + the special-token rows), not the resized embeddings."""
    peft_model.save_pretrained(folder / ADAPTER_DIR, save_embedding_layers=False)


def load_gated_adapter(model: nn.Module, folder: Path, special_ids: list[int]) -> nn.Module:
    """Wrap a base model (GEM tokens already added) with the saved adapter, gated."""
    from peft import PeftModel

    path = folder / ADAPTER_DIR
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{folder} has no {ADAPTER_DIR}/adapter_config.json")
    try:
        with warnings.catch_warnings():  # peft reads a property transformers 5 deprecates
            warnings.filterwarnings(
                "ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning
            )
            peft_model = PeftModel.from_pretrained(model, str(path))
    except Exception as exc:  # corrupt or mismatched files
        raise ValueError(f"cannot load the gated adapter in {path}: {exc}") from exc
    SpecialGate(peft_model, special_ids)
    return peft_model
