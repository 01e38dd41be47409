"""The golden path in this process, per kind: the front's attributes, the sentence-transformers
export, ``gemlm info``, ``gemlm embed``, the ``gemlm rag`` commands, no deprecation warnings; and
the guard that keeps it all offline. The servers boot meanwhile (conftest.py)."""

from __future__ import annotations

import json
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest

from gemlm.cli import app
from gemlm.model import GEMModel

from .conftest import SENTENCES, TEXTS, runner


# ---------------------------------------------------------------------------- the guard
def test_nothing_leaves_the_machine() -> None:
    """What makes the client tests (test_server.py) offline tests: only loopback connects."""
    with socket.socket() as s, pytest.raises(OSError, match="no network"):
        s.connect(("198.51.100.7", 443))  # TEST-NET-2
    with pytest.raises(OSError, match="no network"):
        socket.getaddrinfo("api.openai.com", 443)


# ---------------------------------------------------------------------------- the front
EXPECTED_SCOPE = {"plain": "all", "all": "all", "special_only": "special_only"}


def test_every_front_attribute_works_on_every_kind(gems, folders, kind, tokenizer) -> None:
    gem = gems[kind]
    properties = [n for n, v in vars(GEMModel).items() if isinstance(v, property)]
    assert {"vocab_size", "context_length", "embedding_dim", "special_ids"} <= set(properties)
    values = {n: getattr(gem, n) for n in properties}  # none may raise
    vocab = len(tokenizer) + 1  # the tiny tokenizer + one GEM token
    assert values["vocab_size"] == len(gem.tokenizer) == vocab
    assert values["context_length"] == 256  # the tiny Llama's max_position_embeddings
    assert values["embedding_dim"] == gem.get_embedding_dimension() == 32
    assert gem.get_sentence_embedding_dimension() == 32
    assert values["special_ids"] == [vocab - 1]
    assert values["pad_id"] == gem.tokenizer.pad_token_id
    assert str(values["device"]) == "cpu" and str(values["dtype"]) == "torch.float32"
    assert gem.prompt() == gem.prompt("query") == gem.prompt("document") == ""
    assert gem.text_room() == gem.config.max_length - 1 - 1  # BOS room, one special token
    ids, cut = gem.tokenize_for_embedding(["the cat sat"])
    assert cut == 0 and ids[0][-1] == vocab - 1
    assert gem.encode("the cat sat").shape == (32,)
    info = gem.info()
    want = {
        "architecture": "LlamaForCausalLM",  # the model's, not a peft wrapper's
        "hidden_size": 32,
        "layers": 2,
        "embedding_dimension": 32,
        "special_tokens": {"<|gem_0|>": vocab - 1},
        "readout": "mean",
        "adapter_scope": EXPECTED_SCOPE[kind],
        "max_length": 256 if kind == "plain" else 64,  # the plain one: clipped to the context
        "prompts": {},
        "dtype": "float32",
        "device": "cpu",
    }
    assert {k: info.get(k) for k in want} == want  # other keys may come
    assert info["base_model"] == str(folders["plain"])  # what each was made from
    assert info["parameters"] >= sum(p.numel() for p in gems["plain"].model.parameters())


def test_export_is_exact_or_refused_by_kind(gems, kind, tmp_path) -> None:
    """The sentence-transformers export: the same vectors where the kind has one (merged
    weights, last-token pooling), a clear refusal where it cannot (a gated LoRA)."""
    from gemlm.export import export_sentence_transformers

    gem = gems[kind]
    if not gem.config.adapter_scope.exportable:
        with pytest.raises(ValueError, match="no sentence-transformers export"):
            export_sentence_transformers(gem, tmp_path / "st")
        assert not (tmp_path / "st").exists()
        return
    from sentence_transformers import SentenceTransformer

    out = export_sentence_transformers(gem, tmp_path / "st")
    st = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(st.encode(SENTENCES[:3]), gem.encode(SENTENCES[:3]), atol=1e-4)


def test_gemlm_info_shows_every_kind(folders, kind) -> None:
    r = runner.invoke(app, ["info", "--model", str(folders[kind]), "--dtype", "float32"])
    assert r.exit_code == 0, r.output
    assert "LlamaForCausalLM" in r.output and EXPECTED_SCOPE[kind] in r.output


def test_gemlm_embed_cli_equals_encode(folders, gems, kind, tmp_path) -> None:
    out = tmp_path / "e.npy"
    args = ["embed", *TEXTS[:2], "--out", str(out), "--model", str(folders[kind])]
    r = runner.invoke(app, [*args, "--dtype", "float32"])
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(np.load(out), gems[kind].encode(TEXTS[:2]), atol=1e-5)


def test_gemlm_rag_cli_index_list_ask_delete(folders, note, kind, tmp_path) -> None:
    """The RAG commands on their own store (the servers hold theirs open)."""
    store = ["--qdrant-path", str(tmp_path / "q")]
    r = runner.invoke(app, ["rag", "index", str(note), "-c", "kb", "-m", str(folders[kind]),
                            "--dtype", "float32", *store])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["rag", "list", "-c", "kb", "--json", *store])
    assert r.exit_code == 0, r.output
    assert note.name in r.output
    ask = ["rag", "ask", "what is the capital of france?", "-c", "kb", "--json", *store]
    r = runner.invoke(
        app, [*ask, "--max-new-tokens", "6", "--temperature", "0", "--dtype", "float32"]
    )
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output[r.output.index("{") :])  # after any stderr line
    assert answer["sources"] and Path(answer["sources"][0]["source"]).name == note.name
    r = runner.invoke(app, ["rag", "delete", "-c", "kb", "--yes", *store])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["rag", "list", "--json", *store])
    assert "kb" not in r.output


def test_no_deprecation_warnings_from_gemlm_calls(folders, kind) -> None:
    """Load, embed (also keeping the KV cache) and generate: the current transformers API."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        gem = GEMModel.from_pretrained(str(folders[kind]), dtype="float32")
        ids, _ = gem.tokenize_for_embedding(["the cat sat"])
        kept = gem.embed_keep_cache(ids[0][: -len(gem.special_ids)])
        gem.encode(TEXTS)
        gem.complete("the cat", max_new_tokens=2, temperature=0.0)
    assert kept.cache.get_seq_length() == len(ids[0])  # the cache was filled
