"""Tiny local models and tokenizers: tests never touch the network."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

warnings.filterwarnings("ignore", message=".*generation flags are not valid.*")

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "the cat sat on the mat and the dog sat on the rug",
    "a quick brown fox jumps over the lazy dog",
    "language models can embed text and generate text",
    "paris is the capital of france and berlin is the capital of germany",
    "stocks fell sharply today while bonds rose",
    "the weather is sunny with a chance of rain tomorrow",
] * 20


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE (~300 tokens) with ChatML specials, trained in memory."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
    )
    fast.chat_template = CHATML
    return fast


def tiny_model(arch: str, vocab_size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    common = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=True,
    )
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(**common))
    if arch == "gemma3":
        return Gemma3ForCausalLM(Gemma3TextConfig(head_dim=8, sliding_window=256, **common))
    raise ValueError(arch)


def save_tiny(folder: Path, arch: str = "llama") -> Path:
    tok = tiny_tokenizer()
    model = tiny_model(arch, len(tok))
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """The tiny tokenizer alone."""
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain Hugging Face folder (no GEM tokens yet) holding a 2-layer hidden-32 Llama."""
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-gemma3"), "gemma3")


@pytest.fixture(scope="session", params=["llama", "gemma3"])
def tiny_dir(request: pytest.FixtureRequest, tiny_llama_dir: Path, tiny_gemma_dir: Path) -> Path:
    """Both architecture families, one after the other."""
    return tiny_llama_dir if request.param == "llama" else tiny_gemma_dir


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the user's cache."""
    monkeypatch.setenv("GEMLM_HOME", str(tmp_path / "gemlm_home"))
