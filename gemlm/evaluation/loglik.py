"""Batched log-likelihood scoring of a causal LM, as lm-evaluation-harness defines it.

``loglikelihood([(context, continuation), ...])`` returns the summed log-probability of each
continuation given its context. Tokenisation follows lm-eval's HFLM: trailing spaces move from the
context to the continuation, the pair is tokenised as one string and the continuation is whatever
follows the context's tokens; no BOS is added (an empty context starts from the EOS/BOS id); the
input is cut from the left to ``max_length``.

Speed: requests that share a context and have a one-token continuation share one row (one
forward per MMLU question, whatever the number of letters); rows are length-sorted and batched
under a token budget; only the hidden states at the scored positions go through the LM head.
Token ids in ``exclude_ids`` (the GEM tokens, never generated) get no probability mass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .batching import length_batches


class LoglikScorer:
    """Score continuations and texts with ``model`` (a Hugging Face causal LM)."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: object,
        exclude_ids: Sequence[int] = (),
        max_length: int | None = None,
        max_tokens: int = 8192,
    ) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        cfg = model.config.get_text_config()
        self.max_length = max_length or min(getattr(cfg, "max_position_embeddings", 2048), 4096)
        self.max_tokens = max_tokens
        self.exclude_ids = list(exclude_ids)
        self.softcap = getattr(cfg, "final_logit_softcapping", None)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)
        start = (
            tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        )
        self.start_id = start if start is not None else 0

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context ids, continuation ids) the lm-eval way."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        if not context:
            return [self.start_id], self.encode(continuation)
        whole, ctx = self.encode(context + continuation), self.encode(context)
        return ctx, whole[len(ctx) :]

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        """Summed log P(continuation | context) for each request."""
        rows: dict[tuple[int, ...], int] = {}
        inputs: list[list[int]] = []
        targets: list[list[tuple[int, int, int]]] = []  # per row: (position, token, request)
        for r, (context, continuation) in enumerate(requests):
            ctx, cont = self.encode_pair(context, continuation)
            if not cont:
                raise ValueError(f"request {r}: the continuation {continuation!r} has no tokens")
            if len(cont) > self.max_length:
                raise ValueError(f"request {r}: continuation longer than {self.max_length} tokens")
            seq = (ctx + cont)[-(self.max_length + 1) :]  # ctx is never empty: len(seq) > len(cont)
            row_ids = tuple(seq[:-1])
            if row_ids not in rows:
                rows[row_ids] = len(inputs)
                inputs.append(list(row_ids))
                targets.append([])
            start = len(seq) - 1 - len(cont)  # the input position that predicts cont[0]
            for k, token in enumerate(cont):
                targets[rows[row_ids]].append((start + k, token, r))
        out = [0.0] * len(requests)
        for row, lp in self._score_rows(inputs, targets):
            for (_, _, r), value in zip(targets[row], lp, strict=True):
                out[r] += value
        return out

    def token_nll(self, texts: Sequence[str], max_tokens: int = 256) -> tuple[float, int]:
        """(summed NLL, scored tokens) of each text alone, cut to ``max_tokens`` tokens (no BOS
        added unless the tokenizer adds one; the first token is context only)."""
        ids = [self.tokenizer(t, add_special_tokens=True)["input_ids"][:max_tokens] for t in texts]
        ids = [x for x in ids if len(x) >= 2]
        inputs = [x[:-1] for x in ids]
        targets = [[(p, x[p + 1], 0) for p in range(len(x) - 1)] for x in ids]
        nll, count = 0.0, 0
        for _, lp in self._score_rows(inputs, targets):
            nll -= sum(lp)
            count += len(lp)
        return nll, count

    def perplexity(self, texts: Sequence[str], max_tokens: int = 256) -> float:
        nll, count = self.token_nll(texts, max_tokens)
        return math.exp(nll / max(count, 1))

    @torch.inference_mode()
    def _score_rows(self, inputs: list[list[int]], targets: list[list[tuple[int, int, int]]]):
        """Yield (row, [log-prob of each target]) batch by batch, longest rows first."""
        backbone, head = self.model.get_decoder(), self.model.get_output_embeddings()
        for batch in length_batches([len(x) for x in inputs], self.max_tokens):
            T = len(inputs[batch[0]])
            input_ids = torch.full((len(batch), T), self.pad_id, dtype=torch.long)
            mask = torch.zeros(len(batch), T, dtype=torch.long)
            for j, i in enumerate(batch):
                input_ids[j, : len(inputs[i])] = torch.tensor(inputs[i])
                mask[j, : len(inputs[i])] = 1
            hidden = backbone(input_ids=input_ids, attention_mask=mask, use_cache=False)
            hidden = hidden.last_hidden_state  # (B, T, D)
            rows = torch.tensor([j for j, i in enumerate(batch) for _ in targets[i]])
            pos = torch.tensor([p for i in batch for p, _, _ in targets[i]])
            tok = torch.tensor([t for i in batch for _, t, _ in targets[i]])
            logits = head(hidden[rows, pos]).float()  # (N, V): only the scored positions
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            if self.exclude_ids:
                logits[:, self.exclude_ids] = float("-inf")
            lp = torch.log_softmax(logits, -1).gather(-1, tok[:, None])[:, 0].tolist()
            offset = 0
            for i in batch:
                n = len(targets[i])
                yield i, lp[offset : offset + n]
                offset += n
