"""``dtype="int8"`` on each kind, loaded from its folder as a user would: what is quantized and
what stays float, vectors close to float32's, the gate intact, chat, ``gemlm info``, and clear
refusals to save or export the runtime form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

from gemlm.cli import app
from gemlm.export import export_sentence_transformers
from gemlm.model import GEMModel

from .conftest import SENTENCES, runner


@pytest.fixture(scope="module")
def int8_gems(folders) -> dict[str, GEMModel]:
    return {k: GEMModel.from_pretrained(str(f), dtype="int8") for k, f in folders.items()}


def test_int8_quantizes_the_decoder_linears_only(int8_gems, gems, kind) -> None:
    q = int8_gems[kind]
    assert q.precision == "int8" and q.info()["dtype"] == "int8" and q.dtype == torch.float32
    assert gems[kind].precision == "float32"
    names = [n for n, m in q.model.named_modules() if isinstance(m, Int8Linear)]
    assert len(names) == 2 * 6  # tiny Llama: 2 layers x q, k, v, o, gate, up
    assert not any("down_proj" in n or "lora_" in n or "lm_head" in n for n in names)
    floats = [n for n, m in q.model.named_modules() if type(m) is nn.Linear]
    assert any("down_proj" in n for n in floats)
    if kind == "special_only":  # the LoRA deltas stay float around an int8 base layer
        assert any("lora_A" in n for n in floats) and any("lora_B" in n for n in floats)
        assert any(n.endswith("q_proj.base_layer") for n in names)


def test_int8_vectors_are_close_to_float32s_not_equal(int8_gems, gems, kind) -> None:
    a, b = int8_gems[kind].encode(SENTENCES), gems[kind].encode(SENTENCES)
    assert a.shape == b.shape and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cosine = (a * b).sum(1)
    assert cosine.min() > 0.98, cosine
    assert not np.array_equal(a, b)  # it is quantized


def test_int8_gate_still_gives_the_int8_base_on_plain_text(int8_gems, folders) -> None:
    """The gate switches the (float) adapter off on plain text: the int8 special_only model's
    logits are the int8 base's, column for column (the GEM token's own column aside: its row is
    initialised at load)."""
    base = GEMModel.from_pretrained(str(folders["plain"]), dtype="int8")
    gated = int8_gems["special_only"]
    ids = gated.tokenizer(SENTENCES[:2], return_tensors="pt", padding=True)
    with torch.inference_mode():
        want = base.model(**ids).logits[..., :-1]
        got = gated.model(**ids).logits[..., :-1]
    assert torch.equal(got, want)


def test_int8_chats_and_gemlm_info_says_int8(int8_gems, folders, kind) -> None:
    reply = int8_gems[kind].chat("the cat sat", max_new_tokens=4)
    assert isinstance(reply, str)
    r = runner.invoke(app, ["info", "--model", str(folders[kind]), "--dtype", "int8"])
    assert r.exit_code == 0, r.output
    assert "int8" in r.output


def test_int8_refuses_to_save_or_export(int8_gems, kind, tmp_path) -> None:
    q = int8_gems[kind]
    with pytest.raises(ValueError, match="int8 is a runtime form"):
        q.save_pretrained(tmp_path / "saved")
    with pytest.raises(ValueError, match="int8 is a runtime form"):
        export_sentence_transformers(q, tmp_path / "st")
    assert not (tmp_path / "saved").exists() and not (tmp_path / "st").exists()


def test_unknown_dtype_is_a_clear_error(folders) -> None:
    with pytest.raises(ValueError, match="'int8' or 'auto'"):
        GEMModel.from_pretrained(str(folders["plain"]), dtype="int4")
