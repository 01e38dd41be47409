"""The batched scorer against a hand-computed (unbatched, full-logits) reference."""

from __future__ import annotations

import math

import pytest
import torch

from gemlm.evaluation.generation import MCItem, score_mc
from gemlm.evaluation.loglik import LoglikScorer
from gemlm.model import GEMModel


@pytest.fixture(scope="module")
def gem(tiny_llama_dir):
    return GEMModel.from_pretrained(str(tiny_llama_dir), dtype="float32")


def _reference(model, ids: list[int], n_cont: int) -> float:
    """log P of the last ``n_cont`` tokens of ``ids``: one unpadded forward, full logits."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    return sum(lp[p - 1, ids[p]].item() for p in range(len(ids) - n_cont, len(ids)))


def test_loglikelihood_matches_hand_computed(gem):
    scorer = LoglikScorer(gem.model, gem.tokenizer, max_tokens=64)  # small budget: several batches
    requests = [
        ("the cat sat on the", " mat"),
        ("the cat sat on the", " rug and the dog"),
        ("stocks fell sharply today while ", "bonds rose"),  # trailing space moves to the answer
        ("paris is the capital of", " france"),
        ("question: the cat\nanswer:\n", "mat"),  # so does a trailing newline (as lm-eval)
        ("a quick brown fox", " jumps over the lazy dog"),
    ]
    got = scorer.loglikelihood(requests)
    for (ctx, cont), value in zip(requests, got, strict=True):
        ctx_ids, cont_ids = scorer.encode_pair(ctx, cont)
        assert (
            ctx_ids + cont_ids == gem.tokenizer(ctx + cont, add_special_tokens=False)["input_ids"]
        )
        moved = len(ctx) - len(ctx.rstrip())  # lm-eval: trailing whitespace joins the answer
        assert (
            cont_ids
            == gem.tokenizer(ctx + cont, add_special_tokens=False)["input_ids"][
                len(gem.tokenizer(ctx[: len(ctx) - moved], add_special_tokens=False)["input_ids"]) :
            ]
        )
        assert value == pytest.approx(
            _reference(gem.model, ctx_ids + cont_ids, len(cont_ids)), abs=1e-4
        )


def test_one_token_choices_share_a_row_and_truncation(gem):
    scorer = LoglikScorer(gem.model, gem.tokenizer)
    ctx = "the weather is sunny with a chance of"
    words = [" the", " a", " rain", " cat", " dog", " on", " and", " is"]
    choices = [c for c in words if len(scorer.encode_pair(ctx, c)[1]) == 1]
    assert len(choices) >= 2
    shared = scorer.loglikelihood([(ctx, c) for c in choices])
    alone = [scorer.loglikelihood([(ctx, c)])[0] for c in choices]
    assert shared == pytest.approx(alone, abs=1e-5)
    short = LoglikScorer(gem.model, gem.tokenizer, max_length=4)  # context cut from the left
    ids = sum(scorer.encode_pair(ctx, choices[0]), [])
    assert short.loglikelihood([(ctx, choices[0])])[0] == pytest.approx(
        _reference(gem.model, ids[-5:], 1), abs=1e-4
    )


def test_gem_tokens_get_no_mass(gem):
    plain = LoglikScorer(gem.model, gem.tokenizer)
    masked = LoglikScorer(gem.model, gem.tokenizer, exclude_ids=gem.special_ids)
    a, b = (
        plain.loglikelihood([("the cat", " sat")])[0],
        masked.loglikelihood([("the cat", " sat")])[0],
    )
    assert b > a  # the GEM row's probability is renormalised away


def test_perplexity_matches_the_models_own_loss(gem):
    texts = [
        "the cat sat on the mat and the dog sat on the rug",
        "stocks fell sharply today",
        "a quick brown fox jumps over the lazy dog",
    ]
    scorer = LoglikScorer(gem.model, gem.tokenizer, max_tokens=32)
    nll, count = scorer.token_nll(texts)
    assert scorer.perplexity(texts) == pytest.approx(math.exp(nll / count))
    ids = [gem.tokenizer(t, return_tensors="pt")["input_ids"] for t in texts]
    with torch.no_grad():
        losses = [gem.model(input_ids=x, labels=x).loss.item() * (x.shape[1] - 1) for x in ids]
    expected = math.exp(sum(losses) / sum(x.shape[1] - 1 for x in ids))
    assert scorer.perplexity(texts) == pytest.approx(expected, rel=1e-4)


def test_score_mc_acc_and_norm(gem):
    scorer = LoglikScorer(gem.model, gem.tokenizer)
    item = MCItem("the cat sat on the", [" mat", " mat and the dog sat on the rug"], 0, "pets")
    ll = scorer.loglikelihood([(item.context, c) for c in item.choices])
    out = score_mc(scorer, [item], macro=True)
    assert out["acc"] == (100.0 if ll[0] > ll[1] else 0.0)
    norm = [v / len(c) for v, c in zip(ll, item.choices, strict=True)]
    assert out["acc_norm"] == (100.0 if norm[0] > norm[1] else 0.0)
    assert out["acc_macro"] == out["acc"] and out["subjects"] == 1
