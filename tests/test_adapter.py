"""adapter_scope="special_only": plain-text logits bit-identical to the base; a small adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from gemlm.adapter import ADAPTER_DIR
from gemlm.config import GEMConfig
from gemlm.embedding import EmbeddingEngine
from gemlm.model import GEMModel
from gemlm.rag import reuse
from gemlm.training.run import train

from .training.test_trainer import corpus, tiny_config  # noqa: F401  (corpus is a fixture)

PLAIN = [[5, 17, 23, 42, 8, 9, 61, 30], [70, 3, 12, 12, 44, 19, 2, 55]]


@pytest.fixture(scope="module")
def trained(tiny_llama_dir, corpus, tmp_path_factory) -> dict[str, Path]:  # noqa: F811
    """The same tiny run in both scopes, at a learning rate that moves every trained weight."""
    out = {}
    for scope in ("all", "special_only"):
        folder = tmp_path_factory.mktemp(scope)
        cfg = tiny_config(
            tiny_llama_dir,
            corpus,
            folder,
            adapter_scope=scope,
            ntp_lr=5e-2,
            contrastive_lr=5e-2,
        )
        out[scope] = Path(train(cfg)["model"])
    return out


def base_logits(base_dir: Path, ids: list[list[int]]) -> torch.Tensor:
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return base(input_ids=torch.tensor(ids)).logits  # (B, T, V_base): no GEM column


def gem_logits(gem: GEMModel, ids: list[list[int]], vocab: int) -> torch.Tensor:
    with torch.no_grad():
        return gem.model(input_ids=torch.tensor(ids)).logits[..., :vocab]


@pytest.mark.parametrize("scope, identical", [("special_only", True), ("all", False)])
def test_plain_text_logits_bit_identical_only_when_gated(
    trained, tiny_llama_dir, scope, identical
) -> None:
    want = base_logits(tiny_llama_dir, PLAIN)
    gem = GEMModel.from_pretrained(trained[scope], dtype="float32")
    got = gem_logits(gem, PLAIN, want.shape[-1])
    assert torch.equal(got, want) is identical
    if not identical:
        assert (got - want).abs().max() > 1e-4  # the merged LoRA moved ordinary positions


def test_plain_text_logits_equal_the_gem_base_in_every_column(trained, tiny_llama_dir) -> None:
    """The GEM tokens' trained rows are switched off with the LoRA: on plain text the gated
    model is the base model with the GEM tokens added, their logits included."""
    base = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    gem = GEMModel.from_pretrained(trained["special_only"], dtype="float32")
    vocab = gem.model.get_input_embeddings().weight.shape[0]
    assert torch.equal(gem_logits(gem, PLAIN, vocab), gem_logits(base, PLAIN, vocab))


def test_no_embedding_forward_rebuilds_the_trainable_rows(trained, monkeypatch) -> None:
    """peft rebuilds the whole (vocab, D) matrix per forward its GEM rows are on in: a plain
    forward (every decoded token) must not, nor the embedding lookup of a GEM forward; only
    the tied LM head on a GEM input (training's NTP rows) still does."""
    from peft.tuners.trainable_tokens import TrainableTokensLayer

    gem = GEMModel.from_pretrained(trained["special_only"], dtype="float32")
    calls = []
    merged = TrainableTokensLayer.get_merged_weights
    monkeypatch.setattr(
        TrainableTokensLayer,
        "get_merged_weights",
        lambda self, names: calls.append(1) or merged(self, names),
    )
    with torch.no_grad():
        gem.model(input_ids=torch.tensor(PLAIN))
        gem.model.get_decoder()(input_ids=torch.tensor([PLAIN[0] + gem.special_ids]))
        assert not calls
        gem.encode(["the cat sat on the mat", "a dog"])
        assert not calls
        gem.model(input_ids=torch.tensor([PLAIN[0] + gem.special_ids]))
    assert calls  # the tied head with the trained GEM row


def test_sparse_rows_equal_peft_in_values_and_gradients(trained) -> None:
    """The gate's embedding lookup against peft's own forward (which rebuilds the matrix)."""
    from peft.tuners.trainable_tokens import TrainableTokensLayer

    from gemlm.adapter import embedding_with_rows

    gem = GEMModel.from_pretrained(trained["special_only"], dtype="float32")
    layer = gem.model.get_base_model().get_input_embeddings().token_adapter
    assert isinstance(layer, TrainableTokensLayer) and "forward" in vars(layer)  # bound by the gate
    ids = torch.tensor([PLAIN[0] + gem.special_ids, gem.special_ids + PLAIN[1]])
    delta = next(iter(layer.trainable_tokens_delta.values())).requires_grad_(True)  # loaded frozen
    outs, grads = [], []
    for fn in (lambda x: embedding_with_rows(layer, x), lambda x: type(layer).forward(layer, x)):
        delta.grad = None
        out = fn(ids)
        (out * torch.arange(out.numel()).reshape(out.shape).sin()).sum().backward()
        outs.append(out.detach())
        grads.append(delta.grad.clone())
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])
    assert grads[0].abs().sum() > 0
    gem.model.gem_gate.remove()
    assert "forward" not in vars(layer)


def test_gated_greedy_generation_is_the_base_models(trained, tiny_llama_dir) -> None:
    base = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    gem = GEMModel.from_pretrained(trained["special_only"], dtype="float32")
    for prompt in ("the cat sat on", "language models"):
        assert (
            gem.complete(prompt, max_new_tokens=12).token_ids
            == base.complete(prompt, max_new_tokens=12).token_ids
        )


def test_embedding_forward_keeps_the_base_kv_cache(trained, tiny_llama_dir) -> None:
    """Text positions of `text <gem>` are the base model's, so their cache can serve generation."""
    gem = GEMModel.from_pretrained(trained["special_only"], dtype="float32")
    base = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32").model  # + untrained token
    text = PLAIN[0]
    ids = torch.tensor([text + gem.special_ids])
    with torch.no_grad():
        full = gem.model(input_ids=ids, use_cache=True)
        ref = base(input_ids=ids, use_cache=True)
    n = len(text)
    for got, want in zip(full.past_key_values.layers, ref.past_key_values.layers, strict=True):
        assert torch.equal(got.keys[:, :, :n], want.keys[:, :, :n])
        assert torch.equal(got.values[:, :, :n], want.values[:, :, :n])
    last_got, last_want = full.past_key_values.layers[-1], ref.past_key_values.layers[-1]
    assert not torch.equal(last_got.keys, last_want.keys)  # the special position is adapted
    # ... while the special position itself is adapted: the embedding differs from the base's
    untrained = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    assert not torch.allclose(
        torch.from_numpy(gem.encode("the cat sat")),
        torch.from_numpy(untrained.encode("the cat sat")),
        atol=1e-3,
    )


def test_rag_reuse_on_the_gated_adapter_continues_as_the_base(trained, tiny_llama_dir) -> None:
    """Embed a question, crop its cache, prefill the rest: the logits are the base model's."""
    gem = GEMModel.from_pretrained(trained["special_only"], dtype="float32")
    question, rest = PLAIN[0], PLAIN[1]
    fwd = gem.embed_keep_cache(question)
    want_emb = gem.embed_ids([question + gem.embedder.tail])[0]
    torch.testing.assert_close(fwd.embedding, want_emb, atol=1e-5, rtol=1e-5)
    cache, reused = reuse.prepare_cache(fwd, question + rest)
    assert reused == len(question)
    with torch.no_grad():
        got = gem.model(input_ids=torch.tensor([rest]), cache=cache).logits
    want = base_logits(tiny_llama_dir, [question + rest])[:, len(question) :]
    torch.testing.assert_close(got[..., : want.shape[-1]], want, atol=1e-5, rtol=1e-5)


def test_adapter_folder_is_small_and_loads_on_a_named_base(trained, tiny_llama_dir) -> None:
    folder = trained["special_only"]
    assert GEMConfig.load(folder).adapter_scope == "special_only"
    assert not list(folder.glob("*.safetensors"))  # no base weights in it
    adapter = folder / ADAPTER_DIR / "adapter_model.safetensors"
    base = sum(f.stat().st_size for f in Path(tiny_llama_dir).glob("*.safetensors"))
    assert adapter.stat().st_size < base
    texts = ["the cat sat", "a quick brown fox", ""]
    by_path = GEMModel.from_pretrained(folder, dtype="float32").encode(texts)
    by_base = GEMModel.from_pretrained(tiny_llama_dir, adapter=folder, dtype="float32")
    assert (by_base.encode(texts) == by_path).all()
    assert by_base.info()["adapter_scope"] == "special_only"


def test_gated_adapter_bad_files_are_clear_errors(trained, tmp_path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained["special_only"], broken)
    (broken / ADAPTER_DIR / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="cannot load the gated adapter"):
        GEMModel.from_pretrained(broken, dtype="float32")
    (broken / ADAPTER_DIR / "adapter_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        GEMModel.from_pretrained(broken, dtype="float32")
    with pytest.raises(ValueError, match="not a gated adapter"):
        GEMModel.from_pretrained(trained["all"], adapter=trained["all"], dtype="float32")


def test_special_only_needs_lora(tiny_llama_dir, corpus, tmp_path) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="adapter_scope"):
        tiny_config(tiny_llama_dir, corpus, tmp_path, adapter_scope="special_only", tuning="full")


@pytest.mark.parametrize("k", [1, 2])
def test_gated_two_call_embedding_equals_one_gated_forward(tiny_dir, monkeypatch, k) -> None:
    """Text first with the adapters off, then the specials over its cache == one gated pass."""
    from peft import LoraConfig, get_peft_model

    from gemlm.adapter import SpecialGate

    gem = GEMModel.from_pretrained(tiny_dir, num_special_tokens=k, dtype="float32")
    targets = ["q_proj", "v_proj", "down_proj"]
    lora = LoraConfig(r=4, target_modules=targets, init_lora_weights=False)
    gem.model = get_peft_model(gem.model, lora)
    SpecialGate(gem.model, gem.special_ids)
    gem.config.adapter_scope, gem.config.base_model = "special_only", str(tiny_dir)
    assert gem.embedder.gated
    batch = [[5, 17, 23, 42], [70, 3], [], [9] * 11]  # text lengths 4, 2, 0, 11
    batch = [ids + gem.special_ids for ids in batch]
    two_calls = gem.embed_ids(batch)
    packed = gem.embed_ids(batch, packed=True)
    # one text per batch: four head calls (heads 11, 4, 2 and none), one tail call over their
    # stacked caches; then with no stacking (a tail call per batch)
    calls: list[int] = []
    hook = gem.model.get_decoder().register_forward_pre_hook(lambda *_: calls.append(1))
    grouped = gem.embed_ids(batch, batch_size=1)
    assert len(calls) == 3 + 1  # the empty text has no head call
    gem.embedder.tail_tokens = 0
    alone = gem.embed_ids(batch, batch_size=1)
    assert len(calls) == 4 + 3 + 4
    hook.remove()
    monkeypatch.setattr(EmbeddingEngine, "gated", property(lambda self: False))
    one_pass = gem.embed_ids(batch)  # the gate masks the LoRA at the text positions
    torch.testing.assert_close(two_calls, one_pass, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed, one_pass, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grouped, one_pass, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone, one_pass, atol=1e-5, rtol=1e-5)
    monkeypatch.undo()
    gem.model.gem_gate.remove()  # ungated: the LoRA now moves the text positions too
    gem.config.adapter_scope = "all"
    assert not gem.embedder.gated
    assert not torch.allclose(gem.embed_ids(batch), one_pass, atol=1e-3)
