"""The training module's shortcuts give the plain forward's losses and gradients.

Tolerance: fp32 on tiny models; losses to 1e-5 relative; each trainable tensor's gradient to
1e-4 of its largest entry (max |a - b| / max |b|): the paths sum in other orders, which moves
float32 results by ~1e-6 of the largest term, while a wrong mask or a lost gradient moves them
by O(1).
"""

from __future__ import annotations

import pytest
import torch

from gemlm import masking
from gemlm.adapter import SpecialGate
from gemlm.model import GEMModel
from gemlm.training.collator import IGNORE, ContrastiveCollator, GEMCollator
from gemlm.training.losses import LogitScale, ntp_loss
from gemlm.training.module import GEMTrainingModule, ntp_sums, token_count
from gemlm.training.trainer import apply_lora

from ..conftest import CORPUS

TEXTS = sorted(set(CORPUS))


def lora_model(tiny_dir, k: int, gated: bool, tied: bool = False):
    """LoRA (+ GEM rows) on a tiny model; untied output head unless ``tied`` (see below)."""
    gem = GEMModel.from_pretrained(tiny_dir, num_special_tokens=k, dtype="float32")
    if not tied:
        head = gem.model.get_output_embeddings()
        head.weight = torch.nn.Parameter(head.weight.detach().clone())
        gem.model.config.tie_word_embeddings = False
    lm = apply_lora(gem.model, gem.special_ids, r=4, alpha=8, dropout=0.0)
    torch.manual_seed(1)
    with torch.no_grad():  # peft starts B at 0, which would hide gradients of A
        for name, p in lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    if gated:
        SpecialGate(lm, gem.special_ids)
    return gem, lm


def grads_of(module: torch.nn.Module, batch: dict, key: str = "loss"):
    module.zero_grad(set_to_none=True)
    out = module(**batch)
    out[key].backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return out, grads


def assert_same_grads(a: dict, b: dict, scale: float = 1.0, skip: str = "@") -> None:
    assert a.keys() == b.keys() and a
    for name in (n for n in a if skip not in n):
        err = (a[name] * scale - b[name]).abs().max() / b[name].abs().max().clamp(min=1e-12)
        assert float(err) <= 1e-4, (name, float(err))


def contrastive_batch(gem: GEMModel, seed: int = 0) -> dict:
    ids = [gem.tokenizer(t)["input_ids"] for t in TEXTS]
    collate = ContrastiveCollator(
        special_ids=gem.special_ids,
        pad_id=gem.pad_id,
        dropout=0.3,
        protect=1,
        suffix_ids=gem.tokenizer(" means:")["input_ids"],
        seed=seed,
    )
    return collate([{"input_ids": i} for i in ids])


def ntp_batch(gem: GEMModel, fmt: str, gem_prob: float) -> dict:
    ids = gem.tokenizer(" ".join(TEXTS))["input_ids"]
    chunks = [ids[i : i + 30] for i in range(0, 6 * 30, 30)]
    collate = GEMCollator(
        special_ids=gem.special_ids,
        pad_id=gem.pad_id,
        gem_prob=gem_prob,
        format=fmt,
        min_prefix=3,
        min_suffix=3,
        seed=3,
    )
    return collate([{"input_ids": c} for c in chunks])


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_frozen_contrastive_equals_the_gated_full_forward(tiny_dir, k, alpha) -> None:
    gem, lm = lora_model(tiny_dir, k, gated=True)
    batch = contrastive_batch(gem)
    scale = LogitScale()
    full = GEMTrainingModule(lm, scale, alpha)
    fast = GEMTrainingModule(lm, scale, alpha, frozen_text=True, micro_batch=4)
    out_full, g_full = grads_of(full, batch)
    out_fast, g_fast = grads_of(fast, batch)
    torch.testing.assert_close(out_fast["contrastive"], out_full["contrastive"], rtol=1e-5, atol=0)
    if alpha == 1.0:  # with alpha < 1 the full loss adds NTP on the text: a constant here
        torch.testing.assert_close(out_fast["loss"], out_full["loss"], rtol=1e-5, atol=0)
    assert_same_grads(g_fast, g_full)
    assert any("lora_A" in n for n in g_fast) and "log_scale" in "".join(g_fast)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("fmt", ["split", "reconstruction"])
def test_frozen_ntp_equals_the_gated_full_forward(tiny_dir, k, fmt) -> None:
    gem, lm = lora_model(tiny_dir, k, gated=True)
    batch = ntp_batch(gem, fmt, gem_prob=0.5)
    rows = (batch["segments"] == masking.SPECIAL).any(1)
    assert 0 < int(rows.sum()) < len(rows)  # plain rows too, which the fast path skips
    # the tokens that carry gradient: the suffix of GEM rows (specials are no targets)
    grad_labels = batch["labels"].masked_fill(batch["segments"] != masking.SUFFIX, IGNORE)
    full = GEMTrainingModule(lm)
    fast = GEMTrainingModule(lm, frozen_text=True)
    out_fast, g_fast = grads_of(fast, batch)
    out_same, g_same = grads_of(full, {**batch, "labels": grad_labels})
    torch.testing.assert_close(out_fast["loss"], out_same["loss"], rtol=1e-5, atol=0)
    assert_same_grads(g_fast, g_same)
    # the full loss (every token) has the same gradient, scaled by its token count
    _, g_all = grads_of(full, batch)
    ratio = token_count(batch["labels"]) / token_count(grad_labels)
    assert_same_grads(g_all, g_fast, scale=ratio)
    assert int(out_fast["gem_rows"]) == int(rows.sum())


@pytest.mark.parametrize("stage", ["ntp", "contrastive"])
def test_with_a_tied_head_only_the_gem_rows_gradient_differs(tiny_llama_dir, stage) -> None:
    """With tied embeddings (SmolLM2) the GEM row is also a row of the output head, so every
    position's softmax sends it a gradient ("do not predict the GEM token"). The frozen path
    computes the head only where the adapter can change a state, so it omits that term for the
    text positions; every other gradient is the same."""
    gem, lm = lora_model(tiny_llama_dir, 1, gated=True, tied=True)
    if stage == "ntp":
        batch = ntp_batch(gem, "split", gem_prob=0.5)
        labels = batch["labels"].masked_fill(batch["segments"] != masking.SUFFIX, IGNORE)
        full, fast = GEMTrainingModule(lm), GEMTrainingModule(lm, frozen_text=True)
        _, g_full = grads_of(full, {**batch, "labels": labels})
    else:
        batch, scale = contrastive_batch(gem), LogitScale()
        full = GEMTrainingModule(lm, scale, 0.5)
        fast = GEMTrainingModule(lm, scale, 0.5, frozen_text=True)
        _, g_full = grads_of(full, batch)
    _, g_fast = grads_of(fast, batch)
    assert_same_grads(g_fast, g_full, skip="trainable_tokens_delta")
    delta = next(n for n in g_fast if "trainable_tokens_delta" in n)
    if stage == "contrastive":  # NTP on the anchors' text reaches only the tied GEM row
        assert not torch.allclose(g_fast[delta], g_full[delta])


def test_frozen_ntp_without_gem_rows_is_a_zero_loss_with_a_graph(tiny_llama_dir) -> None:
    gem, lm = lora_model(tiny_llama_dir, 1, gated=True)
    out, grads = grads_of(GEMTrainingModule(lm, frozen_text=True), ntp_batch(gem, "split", 0.0))
    assert float(out["loss"]) == 0.0 and all(float(g.abs().max()) == 0 for g in grads.values())


def test_frozen_text_needs_a_gate(tiny_llama_dir) -> None:
    _, lm = lora_model(tiny_llama_dir, 1, gated=False)
    with pytest.raises(ValueError, match="gated adapter"):
        GEMTrainingModule(lm, frozen_text=True)


@pytest.mark.parametrize("k", [1, 2])
def test_micro_batches_equal_one_forward_in_the_all_scope(tiny_dir, k) -> None:
    gem, lm = lora_model(tiny_dir, k, gated=False)
    batch = contrastive_batch(gem, seed=2)
    scale = LogitScale()
    one = GEMTrainingModule(lm, scale, alpha=0.5)
    micro = GEMTrainingModule(lm, scale, alpha=0.5, micro_batch=3)
    out_one, g_one = grads_of(one, batch)
    out_micro, g_micro = grads_of(micro, batch)
    for key in ("loss", "contrastive", "ntp"):
        torch.testing.assert_close(out_micro[key], out_one[key], rtol=1e-5, atol=0)
    assert_same_grads(g_micro, g_one)


def test_logits_only_where_labels_are_equal_the_full_ntp_loss(tiny_dir) -> None:
    gem, lm = lora_model(tiny_dir, 2, gated=False)
    batch = ntp_batch(gem, "split", gem_prob=0.5)
    common = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}
    out = lm(**common, use_cache=False)
    hidden = lm.get_decoder()(**common, use_cache=False).last_hidden_state
    expected = ntp_loss(out.logits, batch["labels"])
    got = ntp_sums(lm, hidden, batch["labels"]) / token_count(batch["labels"])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)


def test_bf16_frozen_linears_is_bit_identical_under_autocast(tiny_dir) -> None:
    from gemlm.training.module import bf16_frozen_linears

    gem, lm = lora_model(tiny_dir, 1, gated=True)
    batch, scale = contrastive_batch(gem), LogitScale()
    module = GEMTrainingModule(lm, scale, frozen_text=True, mask_dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, grads = grads_of(module, batch)
        cast = bf16_frozen_linears(lm)
        out_cast, grads_cast = grads_of(module, batch)
    assert cast == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down) base weights
    assert torch.equal(out["loss"], out_cast["loss"])
    assert all(torch.equal(grads[n], grads_cast[n]) for n in grads)
    assert all(p.dtype == torch.float32 for p in lm.parameters() if p.requires_grad)


@pytest.mark.parametrize("scope", ["all", "frozen"])
@pytest.mark.parametrize("extras", [False, True])
def test_grad_cache_equals_the_plain_loss_and_gradients(tiny_dir, scope, extras) -> None:
    frozen = scope == "frozen"
    gem, lm = lora_model(tiny_dir, 2, gated=frozen)
    batch = contrastive_batch(gem, seed=4)
    kw: dict = {"frozen_text": frozen}
    if extras:  # Matryoshka terms and a teacher's similarities also reach the embeddings
        kw |= {"matryoshka_dims": [8, 16], "distill_weight": 0.5}
        batch["teacher"] = torch.nn.functional.normalize(torch.randn(len(TEXTS) * 2, 12), dim=-1)
    scale = LogitScale()
    plain = GEMTrainingModule(lm, scale, **kw)
    cached = GEMTrainingModule(lm, scale, micro_batch=3, grad_cache=True, **kw)
    out_plain, g_plain = grads_of(plain, batch)
    out_cached, g_cached = grads_of(cached, batch)
    for key in [k for k in out_plain if k != "accuracy"]:
        torch.testing.assert_close(out_cached[key], out_plain[key], rtol=1e-5, atol=0)
    assert_same_grads(g_cached, g_plain)
    assert any("lora_A" in n for n in g_cached) and "log_scale" in "".join(g_cached)


def test_grad_cache_scales_with_the_incoming_gradient(tiny_dir) -> None:
    """The Trainer divides the loss by the accumulation steps before backward."""
    gem, lm = lora_model(tiny_dir, 1, gated=False)
    batch, scale = contrastive_batch(gem, seed=5), LogitScale()
    _, g_plain = grads_of(GEMTrainingModule(lm, scale, micro_batch=4), batch)
    cached = GEMTrainingModule(lm, scale, micro_batch=4, grad_cache=True)
    cached.zero_grad(set_to_none=True)
    (cached(**batch)["loss"] * 0.25).backward()
    g_cached = {n: p.grad for n, p in cached.named_parameters() if p.grad is not None}
    assert_same_grads(g_cached, g_plain, scale=4.0)


def test_grad_cache_replays_under_the_forwards_autocast(tiny_dir) -> None:
    """One micro-batch, so both paths cast the same way: without autocast in the replay the
    bf16 forward's gradients would be fp32 ones, off by ~1e-2. (With several micro-batches the
    plain path sums the cast weights' gradients in bf16 across them, the cache in fp32.)"""
    gem, lm = lora_model(tiny_dir, 1, gated=False)
    batch, scale = contrastive_batch(gem, seed=5), LogitScale()
    losses, grads = [], []
    for module in GEMTrainingModule(lm, scale), GEMTrainingModule(lm, scale, grad_cache=True):
        module.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # as the Trainer: forward only
            losses.append(module(**batch)["loss"])
        losses[-1].backward()
        grads.append({n: p.grad for n, p in module.named_parameters() if p.grad is not None})
    assert torch.equal(losses[1], losses[0])
    assert_same_grads(grads[1], grads[0])


def test_grad_cache_is_off_without_autograd_and_needs_alpha_one(tiny_dir) -> None:
    gem, lm = lora_model(tiny_dir, 1, gated=False)
    with pytest.raises(ValueError, match="alpha == 1"):
        GEMTrainingModule(lm, LogitScale(), alpha=0.5, grad_cache=True)
    cached = GEMTrainingModule(lm, LogitScale(), micro_batch=3, grad_cache=True)
    with torch.no_grad():
        out = cached(**contrastive_batch(gem))
    assert not out["loss"].requires_grad and torch.isfinite(out["loss"])
