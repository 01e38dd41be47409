"""``GEMTrainingModule``: the causal LM plus what a stage adds; ``forward`` returns named losses.

Three ways to spend less compute for the same gradients, each tested against the plain forward:

* ``frozen_text`` (``adapter_scope="special_only"``): every position before the GEM tokens is
  the frozen base model, so it runs without autograd into a KV cache and only the specials (+
  the suffix in NTP rows) run with grad over it (:func:`gemlm.adapter.head_tail_forward`).
  NTP rows without GEM tokens have no gradient at all and are skipped.
* logits only where a loss reads them (no LM head on padding, specials, prompts, positives);
* contrastive views forwarded in length-sorted micro-batches (little padding), while InfoNCE
  still sees the whole batch as negatives.

``grad_cache`` (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory
Limited Setup") bounds memory by the micro-batch instead of the batch: the views are embedded
without autograd, the loss is taken on those (detached) embeddings, and when backward reaches
them a hook re-forwards each micro-batch with grad and back-propagates its slice of the
embedding gradient. Same loss and gradients as one forward, one extra forward in cost.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import masking
from ..adapter import head_tail_forward, is_gated
from ..embedding import readout
from .collator import IGNORE
from .losses import LogitScale, distill_cosine, distill_kl, info_nce

FILL_ID = 0  # id written into re-laid padding columns; they are masked, any id would do


def ntp_sums(lm: nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy, the LM head applied only where a label follows.

    hidden (B, T, D) last-layer states, labels (B, T) with -100 ignored -> scalar sum.
    """
    target = labels[:, 1:]  # (B, T-1): position t predicts t + 1
    keep = target != IGNORE
    logits = lm.get_output_embeddings()(hidden[:, :-1][keep]).float()  # (N, V)
    cap = getattr(lm.config.get_text_config(), "final_logit_softcapping", None)
    if cap:  # Gemma 2/3 cap their logits
        logits = torch.tanh(logits / cap) * cap
    return F.cross_entropy(logits, target[keep], reduction="sum")


def token_count(labels: torch.Tensor) -> int:
    """How many next-token targets ``ntp_sums`` scores in ``labels`` (B, T)."""
    return int((labels[:, 1:] != IGNORE).sum())


class GEMTrainingModule(nn.Module):
    """Without a logit scale it is the mixed-NTP stage; with one, the contrastive stage, whose
    batch holds B anchors then B positives (then B mined negatives when the collator says
    ``pairs=B`` for 3B rows: :mod:`gemlm.training.negatives`) and whose loss is
    ``alpha * InfoNCE + (1 - alpha) * NTP(anchors)``; with ``matryoshka_dims`` the InfoNCE term
    is the mean over the full embedding and its first d dims for each d; a batch with
    ``teacher`` vectors adds, beside that self-supervised InfoNCE, ``distill_weight`` x
    :func:`~gemlm.training.losses.distill_kl` and ``distill_cosine_weight`` x
    :func:`~gemlm.training.losses.distill_cosine` (through ``distill_map``, a submodule so the
    optimizer and the checkpoints hold it; it never reaches the model, see ``distill.py``).

    ``frozen_text=True`` needs a gated adapter (``adapter_scope="special_only"``). Its NTP loss
    is the mean over the tokens that carry gradient (the suffix of GEM rows): the same gradient
    direction as the full loss, whose other tokens only add constants. Its contrastive stage
    drops the NTP term, which has no gradient there (the anchors' text is the base model's).
    """

    def __init__(
        self,
        lm: nn.Module,
        logit_scale: LogitScale | None = None,
        alpha: float = 1.0,
        frozen_text: bool = False,
        micro_batch: int = 0,
        mask_dtype: torch.dtype = torch.float32,
        matryoshka_dims: list[int] | None = None,
        distill_weight: float = 0.0,
        distill_temperature: float = 0.05,
        grad_cache: bool = False,
        distill_cosine_weight: float = 0.0,
        distill_map: nn.Module | None = None,
    ):
        super().__init__()
        self.lm = lm
        self.logit_scale = logit_scale
        self.alpha = alpha
        self.frozen_text = frozen_text
        self.micro_batch = micro_batch
        self.mask_dtype = mask_dtype
        self.matryoshka_dims = list(matryoshka_dims or [])
        self.distill_weight = distill_weight
        self.distill_temperature = distill_temperature
        self.distill_cosine_weight = distill_cosine_weight
        self.distill_map = distill_map  # D -> T, or None (the identity); trained, never shipped
        self.grad_cache = grad_cache
        if grad_cache and alpha < 1 and not frozen_text:
            raise ValueError("grad_cache caches the InfoNCE term only: it needs alpha == 1")
        if frozen_text and not is_gated(lm):
            raise ValueError("frozen_text needs a gated adapter (adapter_scope='special_only')")

    def forward(
        self, input_ids, attention_mask, position_ids, segments, labels, teacher=None, pairs=None
    ) -> dict[str, Any]:
        if self.logit_scale is None:
            return self._ntp(input_ids, attention_mask, position_ids, segments, labels)
        B = int(pairs) if pairs is not None else input_ids.shape[0] // 2
        if input_ids.shape[0] not in (2 * B, 3 * B):
            raise ValueError(f"{input_ids.shape[0]} rows for {B} pairs: expected 2B or 3B")
        want_ntp = self.alpha < 1 and not self.frozen_text
        if self.grad_cache and torch.is_grad_enabled():
            emb, ntp_sum = self._cached_views(input_ids, segments)
        else:
            emb, ntp_sum = self._views(input_ids, segments, labels[:B] if want_ntp else None)
        scale = self.logit_scale()
        negatives = emb[2 * B :] if input_ids.shape[0] == 3 * B else None
        parts = info_nce(emb[:B], emb[B : 2 * B], scale, negatives)
        out = {
            "contrastive": parts["loss"].detach(),
            "accuracy": parts["accuracy"],
            "logit_scale": scale.detach(),
        }
        contrastive = parts["loss"]
        if self.matryoshka_dims:  # the same loss on truncated (re-normalised) embeddings
            for d in self.matryoshka_dims:
                neg = negatives[:, :d] if negatives is not None else None
                cut = info_nce(emb[:B, :d], emb[B : 2 * B, :d], scale, neg)["loss"]
                out[f"contrastive_{d}"] = cut.detach()
                contrastive = contrastive + cut
            contrastive = contrastive / (1 + len(self.matryoshka_dims))
        if teacher is not None and self.distill_weight:  # a teacher's in-batch similarities
            kl = distill_kl(emb, teacher, scale, self.distill_temperature, anchors=B)
            out["distill"] = kl.detach()
            contrastive = contrastive + self.distill_weight * kl
        if teacher is not None and self.distill_cosine_weight:  # each text onto its teacher's
            cos = distill_cosine(emb, teacher, self.distill_map)
            out["distill_cosine"] = cos.detach()
            contrastive = contrastive + self.distill_cosine_weight * cos
        loss = self.alpha * contrastive
        if want_ntp:
            ntp = ntp_sum / max(token_count(labels[:B]), 1)
            loss = loss + (1 - self.alpha) * ntp
            out["ntp"] = ntp.detach()
        return {"loss": loss, **out}

    # ------------------------------------------------------------------ NTP stage
    def _ntp(self, input_ids, attention_mask, position_ids, segments, labels) -> dict[str, Any]:
        if self.frozen_text:
            return self._ntp_frozen(input_ids, segments, labels)
        hidden = self.lm.get_decoder()(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state  # (B, T, D)
        loss = ntp_sums(self.lm, hidden, labels) / max(token_count(labels), 1)
        return {"loss": loss, "ntp": loss.detach()}

    def _ntp_frozen(self, input_ids, segments, labels) -> dict[str, Any]:
        rows = (segments == masking.SPECIAL).any(1)  # plain rows: no gradient at all
        if not bool(rows.any()):
            zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
            return {"loss": zero, "ntp": zero.detach(), "gem_rows": torch.tensor(0.0)}
        segments, labels = segments[rows], labels[rows]
        index, head = masking.head_tail_index(segments)
        segments = masking.relay(segments, index, masking.PAD)
        hidden = head_tail_forward(
            self.lm.get_decoder(),
            masking.relay(input_ids[rows], index, FILL_ID),
            segments,
            head,
            self.mask_dtype,
        )  # (b, W, D): specials + suffix
        tail_labels = masking.relay(labels, index, IGNORE)[:, head:]
        loss = ntp_sums(self.lm, hidden, tail_labels) / max(token_count(tail_labels), 1)
        return {"loss": loss, "ntp": loss.detach(), "gem_rows": rows.float().sum()}

    # ------------------------------------------------------------------ contrastive stage
    def _chunks(self, segments: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Row lengths (N,) and the row indices of each micro-batch, longest rows first."""
        lengths = (segments != masking.PAD).sum(1)  # (N,)
        order = lengths.argsort(descending=True, stable=True)
        return lengths, (order.split(self.micro_batch) if self.micro_batch else (order,))

    def _embed(
        self, ids: torch.Tensor, seg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Special readouts (n, D) of one micro-batch, with its last-layer states (n, W, D) and
        the segments they line up with (the tail only when ``frozen_text``)."""
        if self.frozen_text:
            index, head = masking.head_tail_index(seg)
            seg = masking.relay(seg, index, masking.PAD)
            hidden = head_tail_forward(
                self.lm.get_decoder(),
                masking.relay(ids, index, FILL_ID),
                seg,
                head,
                self.mask_dtype,
            )
            seg = seg[:, head:]
        else:
            hidden = self.lm.get_decoder()(
                input_ids=ids,
                attention_mask=masking.batch_attention_mask(seg, self.mask_dtype),
                position_ids=masking.position_ids(seg),
                use_cache=False,
            ).last_hidden_state  # (n, width, D)
        return readout(masking.special_states(hidden, seg), normalize=False), hidden, seg

    def _views(
        self, input_ids: torch.Tensor, segments: torch.Tensor, anchor_labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) special readouts of every row (input order) and, when ``anchor_labels`` are
        given, the summed NTP loss of the first ``len(anchor_labels)`` rows."""
        lengths, chunks = self._chunks(segments)
        embs, ntp_sum = [], torch.zeros((), device=input_ids.device)
        for idx in chunks:
            width = int(lengths[idx].max())
            emb, hidden, _ = self._embed(input_ids[idx, :width], segments[idx, :width])
            embs.append(emb)
            if anchor_labels is not None:
                anchors = idx < len(anchor_labels)
                if bool(anchors.any()):
                    labels = anchor_labels[idx[anchors], :width]
                    ntp_sum = ntp_sum + ntp_sums(self.lm, hidden[anchors], labels)
        return torch.cat(embs)[torch.cat(chunks).argsort()], ntp_sum

    def _cached_views(
        self, input_ids: torch.Tensor, segments: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``_views`` for the gradient cache: (N, D) readouts computed without autograd, as a
        leaf whose backward hook re-forwards each micro-batch with grad (same autocast, same
        RNG state) and back-propagates that micro-batch's rows of the incoming gradient."""
        lengths, chunks = self._chunks(segments)
        device = input_ids.device.type
        autocast = torch.is_autocast_enabled(device)
        cast_dtype = torch.get_autocast_dtype(device) if autocast else None
        rng = torch.get_rng_state()
        with torch.no_grad():
            emb, _ = self._views(input_ids, segments, None)
        emb = emb.detach().requires_grad_()

        def replay(grad: torch.Tensor) -> None:  # grad (N, D): d loss / d readouts
            ctx = torch.autocast(device, dtype=cast_dtype) if autocast else contextlib.nullcontext()
            with torch.random.fork_rng(devices=[]), torch.enable_grad(), ctx:
                torch.set_rng_state(rng)
                for idx in chunks:
                    width = int(lengths[idx].max())
                    part, _, _ = self._embed(input_ids[idx, :width], segments[idx, :width])
                    torch.autograd.backward(part, grad[idx].to(part.dtype))

        emb.register_hook(replay)
        return emb, torch.zeros((), device=input_ids.device)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {
            n: p.detach().contiguous().clone()
            for n, p in self.named_parameters()
            if p.requires_grad
        }


def bf16_frozen_linears(lm: nn.Module) -> int:
    """Store every frozen ``nn.Linear`` weight (and bias) in bf16; returns how many were cast.

    Under bf16 autocast a Linear casts its fp32 weight to bf16 at every call, so storing it in
    bf16 gives bit-identical outputs without the per-step cast (and half the memory). Only for
    weights that never change and are never merged: the frozen base of a gated adapter. The
    output head is left alone (tied to the embeddings, which run in fp32).
    """
    head = lm.get_output_embeddings()
    count = 0
    for module in lm.modules():
        if type(module) is nn.Linear and module is not head and not module.weight.requires_grad:
            module.to(torch.bfloat16)
            count += 1
    return count
