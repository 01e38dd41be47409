"""The embedding engine: one input builder, one readout, padded / packed / cached forwards agree."""

from __future__ import annotations

import pytest
import torch

from gemlm.embedding import EmbeddingEngine, readout
from gemlm.masking import PAD, PREFIX, SPECIAL, SUFFIX, special_states
from gemlm.model import GEMModel

TEXTS = ["the cat sat on the mat", "paris", "", "a much longer text about dogs " * 4]


def load(folder, **kw) -> GEMModel:
    return GEMModel.from_pretrained(folder, dtype="float32", **kw)


@pytest.fixture(scope="module")
def gem(tiny_llama_dir) -> GEMModel:
    return load(tiny_llama_dir, num_special_tokens=2)


# ---------------------------------------------------------------- readout
def test_readout_averages_the_special_states() -> None:
    hidden = torch.arange(2 * 6 * 3, dtype=torch.float32).view(2, 6, 3)
    segments = torch.tensor(
        [
            [PREFIX, PREFIX, SPECIAL, SPECIAL, SUFFIX, PAD],
            [PREFIX, SPECIAL, SPECIAL, PAD, PAD, PAD],
        ]
    )
    out = readout(special_states(hidden, segments), normalize=False)
    expected = torch.stack([(hidden[0, 2] + hidden[0, 3]) / 2, (hidden[1, 1] + hidden[1, 2]) / 2])
    assert out.shape == (2, 3) and out.dtype == torch.float32
    assert torch.equal(out, expected)
    assert out[0].tolist() == [7.5, 8.5, 9.5]
    unit = readout(special_states(hidden, segments))
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(2))
    concat = readout(special_states(hidden, segments), mode="concat", normalize=False)
    assert torch.equal(concat[0], torch.cat([hidden[0, 2], hidden[0, 3]]))


def test_readout_ignores_non_special_states() -> None:
    hidden = torch.randn(2, 5, 4)
    segments = torch.tensor([[PREFIX, SPECIAL, SPECIAL, SUFFIX, PAD], [PREFIX] * 3 + [SPECIAL] * 2])
    before = readout(special_states(hidden, segments))
    changed = hidden.clone()
    changed[segments != SPECIAL] = 1e6
    assert torch.equal(readout(special_states(changed, segments)), before)


def test_special_states_reject_rows_with_different_special_counts() -> None:
    hidden = torch.arange(8.0).view(2, 4, 1)
    segments = torch.tensor([[1, 2, 0, 0], [2, 2, 2, 0]])
    with pytest.raises(ValueError, match="same number"):
        special_states(hidden, segments)


def test_training_reads_out_with_the_same_function(gem: GEMModel) -> None:
    """The contrastive stage's readout of a row equals ``encode`` of the same ids (k = 2)."""
    from gemlm.training.module import GEMTrainingModule

    ids, _ = gem.tokenize_for_embedding(TEXTS[:2])
    module = GEMTrainingModule(gem.model)
    width = max(len(x) for x in ids)
    input_ids = torch.full((2, width), gem.pad_id)
    segments = torch.full((2, width), PAD)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x)
        segments[i, : len(x) - 2] = PREFIX
        segments[i, len(x) - 2 : len(x)] = SPECIAL
    with torch.no_grad():
        emb, _, _ = module._embed(input_ids, segments)
    want = gem.embed_ids(ids)
    torch.testing.assert_close(torch.nn.functional.normalize(emb, dim=-1), want, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- input builder
def test_inputs_take_texts_and_token_ids_alike(gem: GEMModel) -> None:
    e = gem.embedder
    text_ids = gem.tokenizer(TEXTS[0], add_special_tokens=True)["input_ids"]
    ids, cut = e.inputs([TEXTS[0], text_ids, [5, 6]])
    assert cut == 0
    assert ids[0] == ids[1] == text_ids + gem.special_ids  # the text as its own ids
    assert ids[2] == [5, 6] + gem.special_ids  # token ids are never prompted or re-tokenized
    prompted, _ = e.inputs([TEXTS[0], [5, 6]], prompt="query: ")
    assert prompted[0] == gem.tokenizer("query: " + TEXTS[0])["input_ids"] + gem.special_ids
    assert prompted[1] == ids[2]
    assert e.inputs([]) == ([], 0)


def test_inputs_cut_the_text_never_the_tail(tiny_llama_dir) -> None:
    m = load(tiny_llama_dir, num_special_tokens=2, max_length=10)
    m.config.readout_suffix = " means"
    ids, cut = m.embedder.inputs(["the cat sat " * 10, list(range(5, 30)), "a"])
    assert cut == 2 and [len(x) for x in ids[:2]] == [10, 10]
    assert all(x[-len(m.embedder.tail) :] == m.embedder.tail for x in ids)
    assert m.embedder.tail == m.embedder.suffix_ids + m.special_ids


def test_prompt_roles_fall_back_to_the_default_prompt(tiny_llama_dir) -> None:
    m = load(tiny_llama_dir)
    assert m.prompt("query") == "" and m.prompt() == ""
    m.config.prompts = {"query": "q: ", "passage": "p: "}
    m.config.default_prompt_name = "passage"
    assert m.prompt("query") == "q: "
    assert m.prompt("document") == "p: " == m.prompt()  # no "document" prompt: the default
    assert m.embedder.prompt(prompt="x") == "x"
    with pytest.raises(ValueError, match="not in the model's prompts"):
        m.embedder.prompt("nope")
    ids, _ = m.tokenize_for_embedding(["cat"], role="query")
    assert ids[0] == m.tokenizer("q: cat")["input_ids"] + m.special_ids
    assert m.text_room("query") == m.config.max_length - len(m.tokenizer("q: ")["input_ids"]) - 1


# ---------------------------------------------------------------- forwards
@pytest.mark.parametrize("k", [1, 2])
def test_every_forward_gives_the_encode_vector(tiny_dir, k: int) -> None:
    m = load(tiny_dir, num_special_tokens=k)
    want = torch.from_numpy(m.encode(TEXTS))
    ids, _ = m.tokenize_for_embedding(TEXTS)
    for got in (
        m.embed_ids(ids),
        m.embed_ids(ids, batch_size=1),
        m.embed_ids(ids, padding_side="left"),
        m.embed_ids(ids, packed=True, row_tokens=16, max_tokens=32),
        torch.stack([m.embed_keep_cache(x[:-k]).embedding for x in ids]),
    ):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert m.embed_ids([]).shape == (0, m.embedding_dim)
    with pytest.raises(ValueError, match="batch_size"):
        m.embed_ids(ids, batch_size=0)


def test_keep_cache_holds_the_text_and_refuses_an_overlong_one(gem: GEMModel) -> None:
    text = gem.tokenizer(TEXTS[0])["input_ids"]
    fwd = gem.embed_keep_cache(text)
    assert fwd.text_ids == text and fwd.cache.get_seq_length() == len(text) + 2
    with pytest.raises(ValueError, match="embedding window holds"):
        gem.embed_keep_cache(list(range(5, 5 + gem.config.max_length)))


def test_assigning_a_model_rewires_both_engines(tiny_llama_dir) -> None:
    m = load(tiny_llama_dir)
    other = load(tiny_llama_dir).model
    m.model = other
    assert m.embedder.model is other and m.generator.model is other
    assert isinstance(m.embedder, EmbeddingEngine)
