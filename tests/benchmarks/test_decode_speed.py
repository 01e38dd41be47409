"""benchmarks.decode_speed's helpers on a tiny model: the matrix-vector floor counts every linear
weight once, an arm's tokens leave out the end-of-sequence id, and the GGUF is the alias's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import decode_speed
from gemlm.model import GEMModel


def test_matvec_floor_counts_each_linear_weight(tiny_llama_dir: Path) -> None:
    gem = GEMModel.from_pretrained(str(tiny_llama_dir))
    seconds, nbytes = decode_speed.matvec_floor_s(gem.model, rounds=2)
    linears = [m for m in gem.model.modules() if m.__class__.__name__ == "Linear"]
    # the head included; at the dtype the host loads (float32, or bfloat16 on an AVX512-BF16 host)
    assert nbytes == sum(m.weight.numel() * m.weight.element_size() for m in linears)
    assert {m.weight.dtype for m in linears} <= {torch.float32, torch.bfloat16}
    assert any(m.weight.shape[0] == len(gem.tokenizer) for m in linears)
    assert 0 < seconds < 1


def test_an_arm_returns_generated_ids_without_eos(tiny_llama_dir: Path) -> None:
    gem = GEMModel.from_pretrained(str(tiny_llama_dir))
    prompts = [gem.prompt_ids("the cat sat"), gem.prompt_ids("paris is")]
    out = decode_speed.gemlm_arm(gem, prompts, 6)()
    want = [
        gem.generator.run(p, decode_speed.Sampling(max_new_tokens=6, temperature=0.0))
        for p in prompts
    ]
    assert out == [[t for t in c.token_ids if t not in gem.generator.eos_ids] for c in want]
    assert all(len(g) <= 6 for g in out)


def test_gguf_of_names_the_wheel_file_or_says_how_to_get_it() -> None:
    try:
        path = decode_speed.gguf_of()
    except SystemExit as exc:
        assert "make setup" in str(exc)
    else:
        assert path.endswith(".gguf") and Path(path).is_file()
    with pytest.raises(KeyError):
        decode_speed.gguf_of("no-such-alias")
