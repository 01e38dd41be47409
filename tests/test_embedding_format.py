"""One embedding input: what training feeds the model is what ``encode`` embeds.

Random texts (empty, whitespace, unicode, long enough to be cut), prompts, roles, readout
suffixes and k in {1, 2}, under a seeded loop (hypothesis is not installed): the contrastive
rows and collator of ``gemlm.training.run`` (token dropout off) give the ids
``GEMModel.tokenize_for_embedding`` / ``EmbeddingEngine.measured_inputs`` give, and both equal
a plain reference of the format written out here.
"""

from __future__ import annotations

import random

import datasets
import pytest
import torch
from tokenizers.processors import TemplateProcessing

from gemlm.embedding_format import EmbeddingFormat, attach_tail
from gemlm.masking import PAD
from gemlm.model import GEMModel
from gemlm.training import run
from gemlm.training.config import GEMTrainingConfig
from gemlm.training.pairs import ASYMMETRIC, tokenize_pairs

WORDS = "the cat sat on mat paris capital of france dog quick brown fox rain".split()
ODD = ["", " ", "\n\t", "naïve café — 東京 🙂", "ü", "a", "Ωmega≠", "  spaced   out  "]
PROMPTS = ["", "query: ", "q: ", "Represent this: ", "ü → "]
SUFFIXES = ["", " means in one word:", ' "', "→ ✓"]
EXAMPLES = 20  # random settings per k; each embeds a batch of 12 texts


def _text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(ODD)
    n = rng.randint(40, 120) if kind > 0.75 else rng.randint(1, 12)  # long ones are cut
    words = [rng.choice(WORDS + ODD[3:]) for _ in range(n)]
    return " ".join(words)


def _reference(gem: GEMModel, texts: list[str], prompt: str) -> list[list[int]]:
    """The format written out: BOS + prompt + text, cut at the end, suffix + specials."""
    tok, cfg = gem.tokenizer, gem.config
    suffix = tok(cfg.readout_suffix, add_special_tokens=False)["input_ids"]
    tail = suffix + tok.convert_tokens_to_ids(cfg.special_tokens)
    ids = tok([prompt + t for t in texts], add_special_tokens=True)["input_ids"]
    return [x[: cfg.max_length - len(tail)] + tail for x in ids]


def _fed(batch: dict[str, torch.Tensor]) -> list[list[int]]:
    """The unpadded rows a collated batch feeds the model."""
    ids, segments = batch["input_ids"], batch["segments"]
    return [row[seg != PAD].tolist() for row, seg in zip(ids, segments, strict=True)]


def _settings(rng: random.Random, gem: GEMModel) -> GEMTrainingConfig:
    """A recipe with random prompts and suffix, applied to ``gem`` as training applies it."""
    suffix = rng.choice(SUFFIXES)
    specials = tuple(gem.config.special_tokens)
    fmt = EmbeddingFormat(special_tokens=specials, readout_suffix=suffix)
    cfg = GEMTrainingConfig(
        prompt=rng.choice(PROMPTS),
        query_prompt=rng.choice([None, *PROMPTS]),
        readout_suffix=suffix,
        max_length=len(fmt.tail_ids(gem.tokenizer)) + rng.randint(2, 30),
        token_dropout=0.0,
        contrastive_unit="paragraph",
        seed=rng.randint(0, 99),
    )
    gem.config.prompts, gem.config.default_prompt_name = {}, None  # as loaded: no prompts
    run.set_embedding_settings(gem, cfg)
    room = cfg.max_length - len(gem.embedder.tail)  # training cuts where encode cuts
    cfg.contrastive_max_len = cfg.positive_max_len = room
    return cfg


def _training_views(
    gem: GEMModel, cfg: GEMTrainingConfig, rows: datasets.Dataset
) -> list[list[int]]:
    if not len(rows):
        return []
    fmt = run.training_format(cfg, gem)
    collator = run.contrastive_collator(cfg, gem, fmt, torch.float32)
    return _fed(collator(list(rows)))


KINDS = [(1, "base"), (2, "all"), (1, "special_only"), (2, "bos")]


@pytest.fixture(scope="module", params=KINDS, ids=[f"k{k}-{kind}" for k, kind in KINDS])
def gem(request, tiny_llama_dir, tmp_path_factory) -> GEMModel:
    """k in {1, 2} and the three model kinds: a plain base model given GEM tokens, a saved
    gemlm folder (``adapter_scope: all``) and a gated adapter's config (``special_only``); and
    a tokenizer that adds a BOS (the tiny one adds none)."""
    k, kind = request.param
    m = GEMModel.from_pretrained(tiny_llama_dir, num_special_tokens=k)
    if kind == "bos":
        bos = (m.tokenizer.bos_token, m.tokenizer.bos_token_id)
        processor = TemplateProcessing(single=f"{bos[0]} $A", special_tokens=[bos])
        m.tokenizer.backend_tokenizer.post_processor = processor
        assert m.tokenizer("cat")["input_ids"][0] == bos[1]
    if kind == "all":
        m = GEMModel.from_pretrained(m.save_pretrained(tmp_path_factory.mktemp("gem")))
    if kind == "special_only":
        m.config.base_model = str(tiny_llama_dir)
        m.config.adapter_scope = "special_only"
    return m


@pytest.mark.parametrize("seed", range(EXAMPLES))
def test_training_rows_are_what_encode_embeds(gem: GEMModel, seed: int) -> None:
    rng = random.Random(seed)
    cfg = _settings(rng, gem)
    texts = [_text(rng) for _ in range(12)]
    want, lengths = gem.embedding_inputs(texts, role="document")  # encode_document's ids
    assert want == gem.embedder.measured_inputs(texts, gem.prompt("document"))[0]
    assert want == _reference(gem, texts, cfg.prompt)
    kept = [w for w, n in zip(want, lengths, strict=True) if n - len(gem.embedder.tail) >= 2]

    fmt = run.training_format(cfg, gem)
    rows = run._contrastive_rows(cfg, gem.tokenizer, _dataset(texts), [], fmt)
    views = _training_views(gem, cfg, rows)
    assert views[: len(rows)] == kept  # the anchors
    assert views[len(rows) :] == kept  # the positives (dropout off)


@pytest.mark.parametrize("seed", range(EXAMPLES))
def test_training_pairs_are_what_encode_query_and_document_embed(gem: GEMModel, seed) -> None:
    rng = random.Random(seed + 500)
    cfg = _settings(rng, gem)
    fmt = run.training_format(cfg, gem)
    n = 10
    pairs = datasets.Dataset.from_dict(
        {
            "query": [_text(rng) for _ in range(n)],
            "positive": [_text(rng) for _ in range(n)],
            "source": [rng.choice(["ict", "title", "crop", "dropout"]) for _ in range(n)],
        }
    )
    room = cfg.contrastive_max_len
    rows = tokenize_pairs(pairs, gem.tokenizer, room, room, fmt=fmt)
    views = _training_views(gem, cfg, rows)

    want: list[tuple[list[int], list[int]]] = []
    tail = len(gem.embedder.tail)
    columns = pairs["query"], pairs["positive"], pairs["source"]
    for query, positive, source in zip(*columns, strict=True):
        role = "query" if source in ASYMMETRIC else "document"
        (q,), (q_len,) = gem.embedding_inputs([query], role=role)  # encode_query / _document
        (d,), (d_len,) = gem.embedding_inputs([positive], role="document")
        prompt = run.query_prompt(cfg) if role == "query" else cfg.prompt
        assert q == _reference(gem, [query], prompt)[0]
        if q_len - tail >= 2 and d_len - tail >= 2:
            want.append((q, d))
    assert views[: len(rows)] == [q for q, _ in want]
    assert views[len(rows) :] == [d for _, d in want]


def test_the_random_examples_cover_cuts_and_empty_texts(gem: GEMModel) -> None:
    rng = random.Random(7)
    _settings(rng, gem)
    texts = [_text(rng) for _ in range(200)]
    _, cut = gem.tokenize_for_embedding(texts)
    assert cut > 10 and "" in texts and any(not t.isascii() for t in texts)


# ---------------------------------------------------------------- the format object
def test_prompt_rule_by_role_and_by_name() -> None:
    fmt = EmbeddingFormat(prompts={"query": "q: ", "passage": "p: "}, default_prompt_name="passage")
    assert fmt.prompt("query") == "q: " and fmt.prompt("document") == "p: " == fmt.prompt()
    assert fmt.prompt("nope", "x") == "x" and fmt.prompt("query", "") == ""
    with pytest.raises(ValueError, match="not in the model's prompts"):
        fmt.prompt("nope", strict=True)
    assert EmbeddingFormat().prompt("query") == ""


def test_encode_keeps_its_prompt_name_rule(tiny_llama_dir) -> None:
    m = GEMModel.from_pretrained(tiny_llama_dir)
    m.config.prompts = {"query": "q: "}
    with pytest.raises(ValueError, match="not in the model's prompts"):
        m.encode("cat", prompt_name="document")  # a name must exist ...
    assert m.prompt("document") == ""  # ... a role falls back (to no default: nothing)
    assert m.encode_document("cat").shape == m.encode("cat").shape


def test_build_takes_token_ids_as_they_are_and_cuts_only_the_text(tokenizer) -> None:
    fmt = EmbeddingFormat(max_length=6, prompts={"query": "q: "})
    built = fmt.build([[5, 6, 7, 8, 9, 10, 11], [5]], "query", tokenizer=tokenizer)
    assert built.ids == [[5, 6, 7, 8, 9, 10], [5]] and built.lengths == [7, 1] and built.cut == 1
    rows = fmt.build(["the cat sat on the mat"], "query", tokenizer=tokenizer, room=3, tail=False)
    assert rows.ids == [tokenizer("q: the cat sat on the mat")["input_ids"][:3]]
    assert attach_tail([[1, 2]], [7], [99]).ids == [[1, 2, 7, 99]]


def test_the_config_derives_the_format_and_saves_no_new_key(tmp_path) -> None:
    from gemlm.config import GEMConfig

    cfg = GEMConfig(num_special_tokens=2, prompts={"query": "q: "}, readout_suffix=" means")
    fmt = cfg.embedding_format
    assert fmt.special_tokens == ("<|gem_0|>", "<|gem_1|>") and fmt.readout_suffix == " means"
    cfg.max_length = 33  # a set field is read afresh
    assert cfg.embedding_format.max_length == 33
    cfg.save(tmp_path)
    assert GEMConfig.load(tmp_path) == cfg
    assert "embedding_format" not in (tmp_path / "gemlm_config.json").read_text()


def _dataset(texts: list[str]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"text": texts})
