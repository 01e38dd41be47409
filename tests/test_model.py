from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from gemlm.config import GEMConfig
from gemlm.model import GEMModel

TEXTS = [
    "the cat sat on the mat",
    "a quick brown fox jumps over the lazy dog and the cat",
    "paris",
    "stocks fell sharply today while bonds rose and the weather is sunny",
    "",
]


def load(folder, **kw) -> GEMModel:
    return GEMModel.from_pretrained(folder, dtype="float32", **kw)


@pytest.fixture(scope="module")
def gem(tiny_llama_dir) -> GEMModel:
    return load(tiny_llama_dir)


# ---------------------------------------------------------------- tokens
def test_special_tokens_added_unsplit_and_initialised(tiny_llama_dir) -> None:
    m = load(tiny_llama_dir, num_special_tokens=3)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    n = base.get_input_embeddings().weight.shape[0]
    assert m.special_ids == [n, n + 1, n + 2]
    assert m.tokenizer("x<|gem_1|>y", add_special_tokens=False)["input_ids"][1] == n + 1
    emb = m.model.get_input_embeddings().weight
    assert emb.shape[0] == n + 3
    assert torch.allclose(emb[n], base.get_input_embeddings().weight.mean(0), atol=1e-6)
    assert torch.equal(emb[:n], base.get_input_embeddings().weight)


@pytest.mark.parametrize("k", [0, 11])
def test_special_token_count_is_bounded(tiny_llama_dir, k: int) -> None:
    with pytest.raises(ValueError, match="1..10"):
        load(tiny_llama_dir, num_special_tokens=k)


def test_save_and_load_restore_the_gem_settings(tiny_llama_dir, tmp_path) -> None:
    m = load(tiny_llama_dir, num_special_tokens=2)
    m.config.prompts = {"query": "query: ", "document": ""}
    m.config.max_length = 64
    path = m.save_pretrained(tmp_path / "gem")
    assert (path / "gemlm_config.json").is_file() and (path / "model.safetensors").is_file()
    again = load(path)
    assert again.config == m.config and again.special_ids == m.special_ids
    np.testing.assert_allclose(again.encode(TEXTS), m.encode(TEXTS), atol=1e-6)
    with pytest.raises(ValueError, match="trained with 2 special tokens"):
        load(path, num_special_tokens=1)
    # saving over an existing folder replaces it whole
    m.save_pretrained(path)
    assert load(path).config == m.config


def test_config_rejects_unknown_keys(tmp_path) -> None:
    (tmp_path / "gemlm_config.json").write_text('{"num_special_tokens": 1, "bogus": 3}')
    with pytest.raises(ValueError, match="bogus"):
        GEMConfig.load(tmp_path)


def test_config_writes_distilled_from_only_when_set(tmp_path) -> None:
    """A self-supervised model's file has no ``distilled_from`` key (gemlm before the field
    reads it); a distilled one's has it, and both load back equal."""
    plain, distilled = GEMConfig(), GEMConfig(distilled_from="all-MiniLM-L6-v2")
    for name, cfg in (("plain", plain), ("distilled", distilled)):
        (tmp_path / name).mkdir()
        cfg.save(tmp_path / name)
        assert GEMConfig.load(tmp_path / name) == cfg
    written = (tmp_path / "plain" / "gemlm_config.json").read_text()
    assert "distilled_from" not in written
    assert (
        '"distilled_from": "all-MiniLM-L6-v2"'
        in (tmp_path / "distilled" / "gemlm_config.json").read_text()
    )


# ---------------------------------------------------------------- encode semantics
def test_encode_shapes_and_types(gem: GEMModel) -> None:
    d = gem.get_embedding_dimension()
    one = gem.encode("the cat")
    assert isinstance(one, np.ndarray) and one.shape == (d,)
    many = gem.encode(TEXTS, batch_size=2)
    assert many.shape == (len(TEXTS), d) and many.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(many, axis=1), 1.0, atol=1e-5)
    t = gem.encode(TEXTS, convert_to_tensor=True)
    assert isinstance(t, torch.Tensor) and t.shape == (len(TEXTS), d)
    lst = gem.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(lst, list) and len(lst) == len(TEXTS) and lst[0].shape == (d,)
    assert gem.encode([]).shape == (0, d)


def test_order_is_restored_after_length_sorting(gem: GEMModel) -> None:
    batch = gem.encode(TEXTS, batch_size=2)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(batch[i], gem.encode(text), atol=1e-5)


def test_truncate_dim_and_normalize(gem: GEMModel) -> None:
    full = gem.encode(TEXTS)
    cut = gem.encode(TEXTS, truncate_dim=8)
    np.testing.assert_allclose(cut, full[:, :8], atol=1e-6)
    renorm = gem.encode(TEXTS, truncate_dim=8, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(renorm, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("precision", "dtype", "width"),
    [
        ("int8", np.int8, 32),
        ("uint8", np.uint8, 32),
        ("binary", np.int8, 4),
        ("ubinary", np.uint8, 4),
    ],
)
def test_precision(gem: GEMModel, precision: str, dtype, width: int) -> None:
    out = gem.encode(TEXTS, precision=precision)
    assert out.dtype == dtype and out.shape == (len(TEXTS), width)


def test_prompts(tiny_llama_dir) -> None:
    m = load(tiny_llama_dir)
    m.config.prompts = {"query": "query: the ", "document": ""}
    a = m.encode("cat", prompt="query: the ")
    np.testing.assert_allclose(m.encode("cat", prompt_name="query"), a, atol=1e-6)
    np.testing.assert_allclose(m.encode_query("cat"), a, atol=1e-6)
    np.testing.assert_allclose(m.encode_document("cat"), m.encode("cat"), atol=1e-6)
    assert not np.allclose(m.encode("cat"), a)
    with pytest.raises(ValueError, match="not in the model's prompts"):
        m.encode("cat", prompt_name="nope")


def test_similarity(gem: GEMModel) -> None:
    e = gem.encode(TEXTS[:3])
    s = gem.similarity(e, e)
    assert s.shape == (3, 3)
    torch.testing.assert_close(torch.diagonal(s), torch.ones(3), atol=1e-5, rtol=0)
    assert gem.similarity_fn_name == "cosine"


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("side", ["right", "left"])
def test_alone_equals_inside_padded_batch(tiny_dir, k: int, side: str) -> None:
    m = load(tiny_dir, num_special_tokens=k)
    alone = np.stack([m.encode(t) for t in TEXTS])
    batched = m.encode(TEXTS, batch_size=len(TEXTS), padding_side=side)
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_specials_do_not_see_each_other(tiny_llama_dir) -> None:
    """With k > 1 the mask matters: a plain causal pass gives a different readout."""
    m = load(tiny_llama_dir, num_special_tokens=3)
    ids, _ = m.tokenize_for_embedding(["the cat sat"])
    gem = m.embed_ids(ids)
    with torch.no_grad():
        h = m.model.get_decoder()(input_ids=torch.tensor(ids)).last_hidden_state[0, -3:]
    causal = torch.nn.functional.normalize(h.mean(0), dim=-1)
    assert not torch.allclose(gem[0], causal, atol=1e-4)
    # the first special sees exactly what a causal pass shows it
    m.config.readout = "concat"
    first = torch.nn.functional.normalize(m.embed_ids(ids)[0, :32], dim=-1)
    torch.testing.assert_close(
        first, torch.nn.functional.normalize(h[0], dim=-1), atol=1e-5, rtol=0
    )


def test_readout_k1_is_last_token_of_the_causal_lm(gem: GEMModel) -> None:
    ids, _ = gem.tokenize_for_embedding(["the cat sat"])
    with torch.no_grad():
        out = gem.model(input_ids=torch.tensor(ids), output_hidden_states=True)
    last = torch.nn.functional.normalize(out.hidden_states[-1][0, -1], dim=-1)
    torch.testing.assert_close(torch.from_numpy(gem.encode("the cat sat")), last, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- bad input
def test_non_string_items_raise_type_error_naming_them(gem: GEMModel) -> None:
    with pytest.raises(TypeError, match="item 1 is int"):
        gem.encode(["ok", 3])
    with pytest.raises(TypeError):
        gem.encode(42)


def test_batch_size_must_be_positive(gem: GEMModel) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        gem.encode(TEXTS, batch_size=0)


def test_empty_string_embeds_as_the_specials_alone(gem: GEMModel) -> None:
    e = gem.encode(["", ""])
    assert np.isfinite(e).all()
    np.testing.assert_allclose(e[0], e[1])


def test_long_texts_are_truncated_once_and_keep_the_specials(tiny_llama_dir) -> None:
    m = load(tiny_llama_dir, num_special_tokens=2, max_length=16)
    long = "the cat sat on the mat " * 20
    ids, cut = m.tokenize_for_embedding([long, "cat"])
    assert cut == 1 and len(ids[0]) == 16 and ids[0][-2:] == m.special_ids
    with pytest.warns(UserWarning, match="1 of 2 texts exceeded max_length=16") as record:
        m.encode([long, "cat"])
    assert len(record) == 1
    with pytest.raises(ValueError, match="exceeds the model's limit"):
        load(tiny_llama_dir, max_length=10_000)


def test_unknown_output_value(gem: GEMModel) -> None:
    with pytest.raises(ValueError):
        gem.encode("x", output_value="token_embeddings")
    with pytest.raises(TypeError):
        gem.encode("x", not_an_option=True)


# ---------------------------------------------------------------- generation
def test_gem_tokens_leave_greedy_generation_identical(tiny_dir) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    m = load(tiny_dir, num_special_tokens=2)
    for prompt in ["the cat sat", "paris is the capital of"]:
        ids = m.tokenizer(prompt, return_tensors="pt")["input_ids"]
        ref = base.generate(
            ids, max_new_tokens=12, do_sample=False, pad_token_id=2, eos_token_id=None
        )
        ours = m.complete(prompt, max_new_tokens=12)
        assert ours.token_ids[: len(ref[0]) - ids.shape[1]] == ref[0, ids.shape[1] :].tolist()


def test_special_tokens_are_never_generated(tiny_llama_dir) -> None:
    m = load(tiny_llama_dir, num_special_tokens=2)

    def force(_module, _inputs, logits):
        logits[..., m.special_ids] += 1e4
        return logits

    m.model.get_output_embeddings().register_forward_hook(force)
    ids = m.tokenizer("the cat", return_tensors="pt")["input_ids"]
    raw = m.model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=2)
    assert set(raw[0, ids.shape[1] :].tolist()) <= set(m.special_ids)  # the hook works
    for temperature in (0.0, 1.0):
        out = m.complete("the cat", max_new_tokens=8, temperature=temperature, seed=0)
        assert out.completion_tokens > 0 and not set(out.token_ids) & set(m.special_ids)


def test_chat_stream_and_stop(gem: GEMModel) -> None:
    prompt = gem.chat_prompt("hello")
    assert prompt.endswith("<|im_start|>assistant\n")
    full = gem.complete(prompt, max_new_tokens=16)
    assert gem.chat("hello", max_new_tokens=16) == full.text
    pieces = list(gem.stream("hello", chat=True, max_new_tokens=16))
    assert "".join(pieces) == full.text
    if len(full.text) > 3:
        stop = full.text[2:4]
        cut = gem.complete(prompt, max_new_tokens=16, stop=[stop])
        assert cut.text == full.text[: full.text.find(stop)] and cut.finish_reason == "stop"
        assert "".join(gem.stream("hello", chat=True, max_new_tokens=16, stop=stop)) == cut.text


def test_generation_bad_input(gem: GEMModel) -> None:
    with pytest.raises(TypeError):
        gem.chat([{"role": "user"}])
    with pytest.raises(ValueError):
        gem.complete("x", max_new_tokens=0)
    with pytest.raises(ValueError):
        gem.complete("")
    with pytest.raises(TypeError):
        gem.complete(3.5)


def test_readout_suffix_sits_before_the_specials_and_is_never_cut(tiny_llama_dir) -> None:
    m = load(tiny_llama_dir, num_special_tokens=2, max_length=12)
    m.config.readout_suffix = " means the cat"
    suffix = m.tokenizer(" means the cat", add_special_tokens=False)["input_ids"]
    assert m.embedder.tail == suffix + m.special_ids
    ids, cut = m.tokenize_for_embedding(["paris " * 20, "a"])
    assert cut == 1 and len(ids[0]) == 12
    assert all(x[-len(suffix) - 2 :] == suffix + m.special_ids for x in ids)
    plain = load(tiny_llama_dir, num_special_tokens=2)
    assert not np.allclose(m.encode("a"), plain.encode("a"))
