"""``GEMModel``: one object that embeds (GEM readout) and generates (the untouched causal LM)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .adapter import load_gated_adapter, save_gated_adapter
from .atomic import atomic_folder
from .config import GEMConfig
from .embedding import EmbeddingEngine, QueryForward
from .generation import Completion, GenerationEngine
from .int8 import INT8, is_int8, quantize_if_int8, refuse_int8
from .loading import default_dtype, dtype_name, load
from .quantization import quantize_embeddings
from .sampling import Sampling
from .sources import DEFAULT_MODEL
from .tokens import add_gem_tokens

__all__ = ["Completion", "GEMModel", "QueryForward", "Sampling", "default_dtype"]


class GEMModel:
    """A causal LM with k GEM special tokens: ``encode`` reads them out, ``generate`` ignores them.

    >>> m = GEMModel.from_pretrained("smollm2-135m-instruct")  # doctest: +SKIP
    >>> m.encode(["a cat", "a dog"]).shape  # doctest: +SKIP
    (2, 576)
    >>> m.chat("What is the capital of France?")  # doctest: +SKIP
    'The capital of France is Paris.'
    """

    similarity_fn_name = "cosine"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        config: GEMConfig | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.config = config or GEMConfig()
        missing = [t for t in self.config.special_tokens if t not in tokenizer.get_vocab()]
        if missing:
            add_gem_tokens(model, tokenizer, self.config.special_tokens)
        self.embedder = EmbeddingEngine(model, tokenizer, self.config)
        self.generator = GenerationEngine(
            model, tokenizer, self.embedder.special_ids, self.embedder.pad_id
        )
        self.model = model.eval()

    @property
    def model(self) -> PreTrainedModel:
        """The Hugging Face causal LM; assigning one (e.g. a trained copy) rewires both engines."""
        return self._model

    @model.setter
    def model(self, model: PreTrainedModel) -> None:
        self._model = self.embedder.model = self.generator.model = model

    @property
    def special_ids(self) -> list[int]:
        """Token ids of the k GEM special tokens."""
        return self.embedder.special_ids

    @property
    def pad_id(self) -> int:
        return self.embedder.pad_id

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike = DEFAULT_MODEL, **options: Any
    ) -> GEMModel:
        """Load a gemlm folder, a Hugging Face folder, a .gguf file, an alias or a hub id.

        Options (:func:`gemlm.loading.load`): ``num_special_tokens`` (default 1, for a model
        that is not yet a GEM model), ``dtype`` ("auto": bf16 where the CPU has it; "int8":
        float32 with the decoder's linear layers dynamic int8, :mod:`gemlm.int8`),
        ``device``, ``max_length``, ``attn_implementation``, ``adapter``, and any other keyword
        for ``AutoModelForCausalLM.from_pretrained``. A gated adapter
        (``adapter_scope="special_only"``) is a small gemlm folder that names its base: load
        it by its path, or as ``from_pretrained(base, adapter=path)``.
        """
        model, tokenizer, config, adapter = load(name_or_path, **options)
        gem = cls(model, tokenizer, config)
        if adapter is not None:
            gem.model = load_gated_adapter(gem.model, Path(adapter), gem.special_ids).eval()
        quantize_if_int8(gem.model, options.get("dtype"))  # after the adapter: LoRA wraps floats
        return gem

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write weights (safetensors), tokenizer and ``gemlm_config.json`` atomically.

        A gated adapter saves only its peft files (``adapter/``) and the config naming the base.
        """
        refuse_int8(self.model, "save")
        with atomic_folder(path) as tmp:
            if self.config.adapter_scope.saved_as_adapter:
                save_gated_adapter(self.model, Path(tmp))
            else:
                self.model.save_pretrained(tmp, safe_serialization=True)
                self.tokenizer.save_pretrained(tmp)
            self.config.save(tmp)
        return Path(path)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        """The torch dtype of the weights and activations (float32 for an int8 model, whose
        decoder's linear layers are int8: see :attr:`precision`)."""
        return self.model.dtype

    @property
    def precision(self) -> str:
        """ "int8" for a model loaded with ``dtype="int8"``, else the dtype's name."""
        return INT8 if is_int8(self.model) else dtype_name(self.dtype)

    def get_embedding_dimension(self) -> int:
        return self.embedder.dim

    get_sentence_embedding_dimension = get_embedding_dimension  # sentence-transformers < 5 name

    # ------------------------------------------------------------------ embedding
    @property
    def embedding_dim(self) -> int:
        """Length of one embedding (the hidden size; k times it for the concat readout)."""
        return self.embedder.dim

    def prompt(self, role: str | None = None) -> str:
        """The text put before an input embedded as ``role`` ("query", "document", or None):
        the config's prompt of that name if it has one, else its default prompt, else ""
        (:meth:`gemlm.embedding_format.EmbeddingFormat.prompt`)."""
        return self.config.embedding_format.prompt(role)

    def text_room(self, role: str | None = None) -> int:
        """Text tokens that fit the embedding window after ``role``'s prompt, before the tail."""
        return self.config.embedding_format.text_room(self.tokenizer, role)

    def tokenize_for_embedding(
        self, inputs: list[str] | list[str | list[int]], role: str | None = None
    ) -> tuple[list[list[int]], int]:
        """Model input ids of texts (``role``'s prompt + text) or of token-id lists (as is), the
        readout tail appended; also how many were cut to ``config.max_length``."""
        return self.embedder.inputs(list(inputs), self.prompt(role))

    def embedding_lengths(
        self, inputs: list[str] | list[str | list[int]], role: str | None = None
    ) -> list[int]:
        """Tokens each input takes in the embedding window before any cut: ``role``'s prompt +
        text (tokenized as :meth:`tokenize_for_embedding` does) or the token ids as given, plus
        the readout tail. Over ``config.max_length``, an input loses the end of its text."""
        return self.embedding_inputs(inputs, role)[1]

    def embedding_inputs(
        self, inputs: list[str] | list[str | list[int]], role: str | None = None
    ) -> tuple[list[list[int]], list[int]]:
        """:meth:`tokenize_for_embedding`'s ids and :meth:`embedding_lengths` from one
        tokenization (the server refuses over-window inputs and embeds the rest)."""
        return self.embedder.measured_inputs(list(inputs), self.prompt(role))

    def embed_ids(self, batch: list[list[int]], **options: Any) -> torch.Tensor:
        """Model inputs from :meth:`tokenize_for_embedding` -> (N, D) float32 embeddings.

        Options (:meth:`gemlm.embedding.EmbeddingEngine.embed`): ``packed=False``,
        ``batch_size=32``, ``padding_side="right"``, ``row_tokens=256``, ``max_tokens=2048``.
        """
        return self.embedder.embed(batch, **options)

    def embed_keep_cache(self, text_ids: list[int]) -> QueryForward:
        """One text's ids (no tail) embedded in a forward whose KV cache generation may reuse."""
        return self.embedder.forward_keep_cache(text_ids)

    def encode(
        self,
        sentences: str | Iterable[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str | None = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        padding_side: str = "right",
    ) -> np.ndarray | torch.Tensor | list[torch.Tensor]:
        """Embed texts the sentence-transformers way; a single string gives a 1-D result.

        The GEM embedding is the last-layer state at the appended special token(s), mean over k,
        L2-normalised (``config.normalize``). ``truncate_dim`` cuts it afterwards and
        ``normalize_embeddings`` re-normalises the cut vector, as in sentence-transformers.
        An empty string is embedded as the special tokens alone (after BOS if the tokenizer adds
        one): the same vector for every empty input, the model's "no content" point.
        """
        if output_value != "sentence_embedding":
            raise ValueError("only output_value='sentence_embedding' is supported")
        if device is not None and torch.device(device) != self.device:
            self.model.to(device)
        single = isinstance(sentences, str)
        texts = _check_texts([sentences] if single else sentences)
        emb = self.embedder.embed_texts(
            texts,
            self.embedder.prompt(prompt_name, prompt),
            batch_size=batch_size,
            padding_side=padding_side,
            progress=bool(show_progress_bar),
        )
        if truncate_dim is not None:
            emb = emb[:, :truncate_dim]
        if normalize_embeddings:
            emb = torch.nn.functional.normalize(emb, dim=-1)
        if precision != "float32":
            emb = torch.from_numpy(quantize_embeddings(emb.numpy(), precision))
        if convert_to_tensor:
            return emb[0] if single else emb
        if convert_to_numpy:
            arr = emb.numpy()
            return arr[0] if single else arr
        return emb[0] if single else list(emb)

    def encode_query(self, sentences: str | Iterable[str], **kwargs: Any) -> Any:
        """``encode`` with ``prompt("query")``: the query prompt, else the default one."""
        return self._encode_role("query", sentences, kwargs)

    def encode_document(self, sentences: str | Iterable[str], **kwargs: Any) -> Any:
        """``encode`` with ``prompt("document")``: the document prompt, else the default one."""
        return self._encode_role("document", sentences, kwargs)

    def _encode_role(self, role: str, sentences: Any, kwargs: dict[str, Any]) -> Any:
        if "prompt" not in kwargs and "prompt_name" not in kwargs:
            kwargs["prompt"] = self.prompt(role)
        return self.encode(sentences, **kwargs)

    def similarity(self, a: Any, b: Any) -> torch.Tensor:
        """Cosine similarity matrix (len(a), len(b)) between two sets of embeddings."""
        a, b = (
            torch.as_tensor(np.asarray(a), dtype=torch.float32),
            torch.as_tensor(np.asarray(b), dtype=torch.float32),
        )
        a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        return torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T

    # ------------------------------------------------------------------ generation
    @property
    def context_length(self) -> int:
        """Prompt + generated tokens the model takes (its position limit; 2048 if unknown)."""
        return self.generator.context_length

    @property
    def vocab_size(self) -> int:
        """Token ids the tokenizer and the embedding matrix both know."""
        # the rows of ``weight``: peft's wrappers of the embedding (a gated adapter's
        # TrainableTokensWrapper) pass the weight through but not ``num_embeddings``
        rows = self.model.get_input_embeddings().weight.shape[0]
        return min(len(self.tokenizer), int(rows))

    def prompt_ids(
        self, prompt: str | list[int] | list[dict[str, str]], *, chat: bool = False
    ) -> list[int]:
        """Ids of a text prompt, of token ids as given, or (``chat=True``) of a conversation."""
        return self.generator.prompt_ids(prompt, chat=chat)

    def chat_prompt(self, messages: str | list[dict[str, str]]) -> str:
        """The chat template applied to ``messages`` (a string is one user message)."""
        return self.generator.chat_prompt(messages)

    def complete(
        self,
        prompt: str | list[int] | list[dict[str, str]],
        sampling: Sampling | None = None,
        *,
        chat: bool = False,
        on_text: Callable[[str], Any] | None = None,
        cancel: threading.Event | None = None,
        cache: Any = None,
        **settings: Any,
    ) -> Completion:
        """Generate one continuation of ``prompt`` (text, ids, or ``chat=True`` messages).

        ``sampling`` or its fields as keywords (``max_new_tokens=256, temperature, top_p,
        top_k, repetition_penalty, frequency_penalty=0, presence_penalty=0, stop=None,
        seed=None``); unset ones take :attr:`generation_defaults`. GEM tokens are never
        generated. ``on_text`` gets the text piece by piece, ``cancel`` stops at the next
        token, ``cache`` holds a prefix of the prompt already run (:meth:`embed_keep_cache`);
        see :meth:`gemlm.generation.GenerationEngine.run`.
        """
        s = replace(sampling, **settings) if sampling else Sampling(**settings)
        return self.generator.run(
            self.prompt_ids(prompt, chat=chat), s, on_text=on_text, cancel=cancel, cache=cache
        )

    def generate(self, prompt: str | list[str], **kwargs: Any) -> str | list[str]:
        """Text continuation(s) of a prompt or a list of prompts (see ``complete`` for options)."""
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            return [self.complete(p, **kwargs).text for p in prompt]
        return self.complete(prompt, **kwargs).text

    def chat(self, messages: str | list[dict[str, str]], **kwargs: Any) -> str:
        """Reply to a conversation using the tokenizer's chat template."""
        return self.complete(messages, chat=True, **kwargs).text

    def stream(
        self,
        prompt: str | list[int] | list[dict[str, str]],
        sampling: Sampling | None = None,
        *,
        chat: bool = False,
        cache: Any = None,
        **settings: Any,
    ) -> Generator[str, None, Completion]:
        """Yield the continuation piece by piece (``chat=True`` applies the chat template); the
        generator returns the :class:`Completion`. Leaving early stops the generation."""
        s = replace(sampling, **settings) if sampling else Sampling(**settings)
        return self.generator.stream(self.prompt_ids(prompt, chat=chat), s, cache=cache)

    def use_static_cache(self, compile: bool = True, warm: Iterable[int] = ()) -> GEMModel:
        """Faster decoding, the same greedy tokens: a static KV cache per length bucket and,
        with ``compile``, ``torch.compile``'d decode steps (the first generation of each bucket
        compiles; ``warm`` lists prompt + new-token lengths to compile now). Returns ``self``.
        See :mod:`gemlm.static_decoding`."""
        self.generator.use_static_cache(compile=compile, warm=warm)
        return self

    @property
    def generation_defaults(self) -> dict[str, Any]:
        """What a generation leaves unset becomes: temperature, top_p, top_k (0: off),
        repetition_penalty, and their source (the model's ``generation_config``, or greedy)."""
        return self.generator.defaults.as_dict()

    def info(self) -> dict[str, Any]:
        cfg = self.model.config.get_text_config()
        fmt = self.config.embedding_format
        return {
            "base_model": self.config.base_model,
            "architecture": type(_unwrapped(self.model)).__name__,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "hidden_size": cfg.hidden_size,
            "layers": cfg.num_hidden_layers,
            "embedding_dimension": self.get_embedding_dimension(),
            "special_tokens": dict(zip(self.config.special_tokens, self.special_ids, strict=True)),
            "readout": self.config.readout,
            "adapter_scope": self.config.adapter_scope,
            "distilled_from": self.config.distilled_from,  # None: self-supervised (or the base)
            "max_length": fmt.max_length,
            "prompts": fmt.prompts,
            "dtype": self.precision,
            "device": str(self.device),
        }


def _unwrapped(model: Any) -> Any:
    """The Hugging Face model inside a peft wrapper (a gated adapter), else ``model``."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _check_texts(sentences: Any) -> list[str]:
    if not isinstance(sentences, Iterable):
        raise TypeError(
            f"encode expects a string or a list of strings, got {type(sentences).__name__}"
        )
    texts = list(sentences)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"encode expects strings; item {i} is {type(t).__name__}: {t!r:.60}")
    return texts
