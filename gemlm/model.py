"""``GEMModel``: one object that embeds (GEM readout) and generates (the untouched causal LM)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    SuppressTokensLogitsProcessor,
    TextIteratorStreamer,
)

from . import masking, packing
from .adapter import head_tail_forward, load_gated_adapter, save_gated_adapter
from .atomic import atomic_folder
from .config import GEMConfig
from .quantization import quantize_embeddings
from .sources import DEFAULT_MODEL, is_gemlm_folder, resolve
from .tokens import add_gem_tokens, append_specials


def default_dtype() -> torch.dtype:
    """bf16 where the CPU computes it natively (AVX512-BF16 / AMX), else fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return torch.float32
    return torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else torch.float32


def _as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return default_dtype()
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise ValueError(f"dtype must be one of {sorted(names)} or 'auto', got {dtype!r}")
    return names[dtype]


@dataclass
class Completion:
    """One generated continuation with what an OpenAI-style server reports about it."""

    text: str
    token_ids: list[int]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (eos or a stop string) or "length"


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
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config or GEMConfig()
        missing = [t for t in self.config.special_tokens if t not in tokenizer.get_vocab()]
        if missing:
            add_gem_tokens(model, tokenizer, self.config.special_tokens)
        self.special_ids: list[int] = tokenizer.convert_tokens_to_ids(self.config.special_tokens)
        pad = tokenizer.pad_token_id
        self.pad_id: int = pad if pad is not None else (tokenizer.eos_token_id or 0)

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike = DEFAULT_MODEL,
        *,
        num_special_tokens: int | None = None,
        dtype: str | torch.dtype = "auto",
        device: str = "cpu",
        max_length: int | None = None,
        attn_implementation: str = "sdpa",
        adapter: str | os.PathLike | None = None,
        **model_kwargs: Any,
    ) -> GEMModel:
        """Load a gemlm folder, a Hugging Face folder, a .gguf file, an alias or a hub id.

        A model that is not yet a GEM model gets ``num_special_tokens`` (default 1) new tokens.
        A gated adapter (``adapter_scope="special_only"``) is a small gemlm folder that names
        its base: load it by its path, or as ``from_pretrained(base, adapter=path)``.
        """
        config: GEMConfig | None = None
        folder = resolve(name_or_path)
        own_path = False  # True: name_or_path is the gated adapter itself
        if adapter is None and is_gemlm_folder(folder):
            config = GEMConfig.load(folder)
            if config.adapter_scope == "special_only":
                adapter, own_path = folder, True
        if adapter is not None:
            config = GEMConfig.load(adapter)
            if config.adapter_scope != "special_only":
                raise ValueError(f"{adapter} is not a gated adapter (adapter_scope='all')")
            if config.base_model is None:  # pragma: no cover - GEMConfig refuses this
                raise ValueError(f"{adapter} does not name its base model")
            if own_path:
                folder = resolve(config.base_model)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=_as_dtype(dtype), attn_implementation=attn_implementation, **model_kwargs
        ).to(device)
        limit = _context_limit(model)
        if config is None:
            config = GEMConfig(
                num_special_tokens=1 if num_special_tokens is None else num_special_tokens,
                max_length=min(512, limit),
                base_model=str(name_or_path),
            )
        elif num_special_tokens not in (None, config.num_special_tokens):
            raise ValueError(
                f"{name_or_path} was trained with {config.num_special_tokens} special tokens; "
                f"cannot load it with num_special_tokens={num_special_tokens}"
            )
        if max_length is not None:
            config.max_length = max_length
        if config.max_length > limit:
            raise ValueError(f"max_length={config.max_length} exceeds the model's limit {limit}")
        gem = cls(model, tokenizer, config)
        if adapter is not None:
            gem.model = load_gated_adapter(gem.model, Path(adapter), gem.special_ids).eval()
        return gem

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write weights (safetensors), tokenizer and ``gemlm_config.json`` atomically.

        A gated adapter saves only its peft files (``adapter/``) and the config naming the base.
        """
        with atomic_folder(path) as tmp:
            if self.config.adapter_scope == "special_only":
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
        return self.model.dtype

    def get_embedding_dimension(self) -> int:
        hidden = self.model.config.get_text_config().hidden_size
        return hidden * (self.config.num_special_tokens if self.config.readout == "concat" else 1)

    get_sentence_embedding_dimension = get_embedding_dimension  # sentence-transformers < 5 name

    # ------------------------------------------------------------------ embedding
    def tokenize_for_embedding(self, texts: list[str]) -> tuple[list[list[int]], int]:
        """Token ids of each text with the specials appended; also how many were truncated."""
        if not texts:
            return [], 0
        encoded = self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        tail = self.readout_tail()
        out, truncated = [], 0
        for ids in encoded:
            ids, cut = append_specials(ids, tail, self.config.max_length)
            out.append(ids)
            truncated += cut
        return out, truncated

    def readout_tail(self) -> list[int]:
        """Ids appended after every embedded text: ``config.readout_suffix`` then the k specials.

        The suffix lets an instruction end right before the specials, e.g. PromptEOL's
        ``" means in one word:"``, and, like the specials, it is never truncated.
        """
        suffix = self.config.readout_suffix
        ids = self.tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix else []
        return ids + self.special_ids

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
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if device is not None and torch.device(device) != self.device:
            self.model.to(device)
        single = isinstance(sentences, str)
        texts = self._check_texts([sentences] if single else sentences)
        prefix = self._resolve_prompt(prompt_name, prompt)
        if prefix:
            texts = [prefix + t for t in texts]

        ids, truncated = self.tokenize_for_embedding(texts)
        if truncated:
            warnings.warn(
                f"{truncated} of {len(texts)} texts exceeded max_length={self.config.max_length} "
                "tokens and were truncated (the special tokens are kept)",
                stacklevel=2,
            )
        emb = self._embed_sorted(ids, batch_size, padding_side, bool(show_progress_bar))

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

    def _embed_sorted(
        self,
        ids: list[list[int]],
        batch_size: int,
        padding_side: str = "right",
        progress: bool = False,
    ) -> torch.Tensor:
        """:meth:`embed_ids` over length-sorted batches; (N, D) float32 in input order."""
        from tqdm.auto import tqdm

        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        for chunk in tqdm(chunks, desc="Batches", disable=not progress):
            vecs = self.embed_ids([ids[i] for i in chunk], padding_side=padding_side)
            for i, v in zip(chunk, vecs, strict=True):
                out[i] = v
        return torch.stack(out) if out else torch.empty(0, self.get_embedding_dimension())

    def encode_query(self, sentences: str | Iterable[str], **kwargs: Any) -> Any:
        """``encode`` with the "query" prompt when the config defines one."""
        return self._encode_role("query", sentences, kwargs)

    def encode_document(self, sentences: str | Iterable[str], **kwargs: Any) -> Any:
        """``encode`` with the "document" prompt when the config defines one."""
        return self._encode_role("document", sentences, kwargs)

    def _encode_role(self, role: str, sentences: Any, kwargs: dict[str, Any]) -> Any:
        if "prompt" not in kwargs and "prompt_name" not in kwargs and role in self.config.prompts:
            kwargs["prompt_name"] = role
        return self.encode(sentences, **kwargs)

    @torch.inference_mode()
    def embed_ids(self, batch: list[list[int]], padding_side: str = "right") -> torch.Tensor:
        """Token-id lists that end with the k specials -> (B, D) float32 embeddings.

        Runs the backbone only (no lm_head). k = 1 uses the stock causal path with a 2-D
        padding mask; k > 1 passes the 4-D GEM mask so the specials do not see each other.
        A gated adapter runs the text and the specials in two calls (:meth:`_embed_gated`).
        """
        k = self.config.num_special_tokens
        if self.gated:
            return self._embed_gated(batch)
        layouts = [masking.Layout(prefix=len(ids) - k, specials=k) for ids in batch]
        segments = masking.batch_segments(layouts, padding_side=padding_side)  # (B, T)
        B, T = segments.shape
        input_ids = torch.full((B, T), self.pad_id, dtype=torch.long)
        input_ids[segments != masking.PAD] = torch.tensor([t for ids in batch for t in ids])
        backbone = self.model.get_decoder()
        hidden = backbone(
            input_ids=input_ids.to(self.device),
            attention_mask=self.embedding_mask(segments).to(self.device),
            position_ids=masking.position_ids(segments).to(self.device),
            use_cache=False,
        ).last_hidden_state  # (B, T, D)
        return self.readout(masking.special_states(hidden, segments.to(self.device))).cpu()

    @property
    def gated(self) -> bool:
        """True for a gated adapter (``adapter_scope="special_only"``) attached to the model."""
        gate = getattr(self.model, "gem_gate", None)
        return gate is not None and gate.attached

    def _embed_gated(self, batch: list[list[int]]) -> torch.Tensor:
        """:meth:`embed_ids` for a gated adapter, in two calls that skip the LoRA at the text.

        The gate makes every text position the base model's, so the text runs first with no
        special token in it (adapters off: the plain base forward, left-padded, into a KV
        cache), then the k specials run alone over that cache (adapters on, each seeing its
        row's text and itself): :func:`gemlm.adapter.head_tail_forward`, which training's
        contrastive stage runs too. Same states as one gated forward, without computing and
        then masking the LoRA deltas at every text position.
        """
        k = self.config.num_special_tokens
        layouts = [masking.Layout(prefix=len(ids) - k, specials=k) for ids in batch]
        segments = masking.batch_segments(layouts)  # (B, T) right-padded
        input_ids = torch.full(segments.shape, self.pad_id, dtype=torch.long)
        input_ids[segments != masking.PAD] = torch.tensor([t for ids in batch for t in ids])
        index, head = masking.head_tail_index(segments)
        segments = masking.relay(segments, index, masking.PAD)
        hidden = head_tail_forward(
            self.model.get_decoder(),
            masking.relay(input_ids, index, self.pad_id).to(self.device),
            segments.to(self.device),
            head,
            self.dtype,
        )  # (B, k, D)
        return self.readout(hidden).cpu()

    @torch.inference_mode()
    def embed_packed(
        self, batch: list[list[int]], row_tokens: int = 256, max_tokens: int = 2048
    ) -> torch.Tensor:
        """:meth:`embed_ids` without padding: texts packed end to end (``gemlm.packing``).

        Rows of ``row_tokens`` (wider if a text is longer), forwards of <= ``max_tokens``
        tokens, a block-diagonal GEM mask; (N, D) float32 in input order.
        """
        if self.gated:  # text as the base model's, then the specials: see _embed_gated
            return self._embed_sorted(batch, batch_size=32)
        p = packing.pack(batch, self.config.num_special_tokens, row_tokens, self.pad_id)
        rows, width = p.input_ids.shape
        per = max(1, max_tokens // width)  # rows per forward
        mask = p.attention_mask(self.dtype)  # (R, 1, C, C)
        backbone = self.model.get_decoder()
        hidden = torch.cat(
            [
                backbone(
                    input_ids=p.input_ids[s : s + per].to(self.device),
                    attention_mask=mask[s : s + per].to(self.device),
                    position_ids=p.positions[s : s + per].to(self.device),
                    use_cache=False,
                ).last_hidden_state
                for s in range(0, rows, per)
            ]
        )  # (R, C, D)
        return self.readout(p.special_states(hidden)).cpu()

    def embedding_mask(self, segments: torch.Tensor) -> torch.Tensor:
        """k = 1: the stock 2-D padding mask (B, T); k > 1: the 4-D GEM mask (B, 1, T, T) so
        the specials do not see each other."""
        if self.config.num_special_tokens == 1:
            return (segments != masking.PAD).long()
        return masking.gem_attention_mask(segments, self.dtype)

    def readout(self, specials: torch.Tensor) -> torch.Tensor:
        """(B, k, D) last-layer special states -> (B, D) float32: mean or concat, L2-normed."""
        specials = specials.float()
        emb = specials.mean(1) if self.config.readout == "mean" else specials.flatten(1)
        if self.config.normalize:
            emb = torch.nn.functional.normalize(emb, dim=-1)
        return emb

    def similarity(self, a: Any, b: Any) -> torch.Tensor:
        """Cosine similarity matrix (len(a), len(b)) between two sets of embeddings."""
        a, b = (
            torch.as_tensor(np.asarray(a), dtype=torch.float32),
            torch.as_tensor(np.asarray(b), dtype=torch.float32),
        )
        a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        return torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T

    def _check_texts(self, sentences: Any) -> list[str]:
        if not isinstance(sentences, Iterable):
            raise TypeError(
                f"encode expects a string or a list of strings, got {type(sentences).__name__}"
            )
        texts = list(sentences)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(
                    f"encode expects strings; item {i} is {type(t).__name__}: {t!r:.60}"
                )
        return texts

    def _resolve_prompt(self, prompt_name: str | None, prompt: str | None) -> str:
        if prompt is not None:
            return prompt
        name = prompt_name or self.config.default_prompt_name
        if name is None:
            return ""
        if name not in self.config.prompts:
            raise ValueError(
                f"prompt_name {name!r} not in the model's prompts {sorted(self.config.prompts)}"
            )
        return self.config.prompts[name]

    # ------------------------------------------------------------------ generation
    def _prompt_ids(self, prompt: str | list[int]) -> torch.Tensor:
        if isinstance(prompt, str):
            ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        elif isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            ids = prompt
        else:
            raise TypeError(
                f"prompt must be a string or a list of token ids, got {type(prompt).__name__}"
            )
        if not ids:
            raise ValueError("prompt is empty")
        return torch.tensor([ids], device=self.device)

    def generation_kwargs(
        self,
        prompt_len: int,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """``model.generate`` settings of every gemlm generation path (``complete``, ``stream``,
        the server, RAG): GEM ids suppressed, greedy at temperature 0, stop strings matched in
        the text generated after ``prompt_len`` tokens; ``seed`` seeds torch now."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        if seed is not None:
            torch.manual_seed(seed)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": temperature > 0,
            "logits_processor": LogitsProcessorList(
                [SuppressTokensLogitsProcessor(self.special_ids, device=self.device)]
            ),
            "pad_token_id": self.pad_id,
        }
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs["stopping_criteria"] = StoppingCriteriaList(
                [_StopOnText(self.tokenizer, prompt_len, stop)]
            )
        return kwargs

    @torch.inference_mode()
    def complete(
        self,
        prompt: str | list[int],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: str | list[str] | None = None,
        seed: int | None = None,
    ) -> Completion:
        """Generate one continuation of ``prompt`` (text or ids); GEM tokens are suppressed."""
        stop = [stop] if isinstance(stop, str) else stop
        input_ids = self._prompt_ids(prompt)
        out = self.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            **self.generation_kwargs(
                input_ids.shape[1], max_new_tokens, temperature, top_p, stop, seed
            ),
        )
        new = out[0, input_ids.shape[1] :].tolist()
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        text, hit_stop = _cut_at_stop(text, stop)
        eos = self._eos_ids()
        finish = (
            "stop"
            if hit_stop or (new and new[-1] in eos) or len(new) < max_new_tokens
            else "length"
        )
        return Completion(text, new, input_ids.shape[1], len(new), finish)

    def generate(self, prompt: str | list[str], **kwargs: Any) -> str | list[str]:
        """Text continuation(s) of a prompt or a list of prompts (see ``complete`` for options)."""
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            return [self.complete(p, **kwargs).text for p in prompt]
        return self.complete(prompt, **kwargs).text

    def chat_prompt(self, messages: str | list[dict[str, str]]) -> str:
        """The chat template applied to ``messages`` (a string is one user message)."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not isinstance(messages, list) or not all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise TypeError(
                "messages must be a string or a list of {'role': str, 'content': str} dicts"
            )
        if not self.tokenizer.chat_template:
            raise ValueError(
                "this tokenizer has no chat template: use generate() with a plain prompt"
            )
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def chat(self, messages: str | list[dict[str, str]], **kwargs: Any) -> str:
        """Reply to a conversation using the tokenizer's chat template."""
        return self.complete(self._chat_ids(messages), **kwargs).text

    def _chat_ids(self, messages: str | list[dict[str, str]]) -> list[int]:
        return self.tokenizer(self.chat_prompt(messages), add_special_tokens=False)["input_ids"]

    def stream(
        self,
        prompt: str | list[int] | list[dict[str, str]],
        *,
        chat: bool = False,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: str | list[str] | None = None,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Yield the continuation piece by piece (``chat=True`` applies the chat template)."""
        stop = [stop] if isinstance(stop, str) else stop
        input_ids = self._prompt_ids(self._chat_ids(prompt) if chat else prompt)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self.generation_kwargs(
            input_ids.shape[1], max_new_tokens, temperature, top_p, stop, seed
        )

        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(
                        input_ids,
                        attention_mask=torch.ones_like(input_ids),
                        streamer=streamer,
                        **kwargs,
                    )
            except BaseException as exc:  # surfaced in the caller's thread below
                failure.append(exc)
                streamer.end()

        thread = Thread(target=run, daemon=True)
        thread.start()
        hold = (
            max((len(s) for s in stop or []), default=1) - 1
        )  # chars that may start a stop string
        sent, text = 0, ""
        stopped = False
        for piece in streamer:
            text += piece
            cut, stopped = _cut_at_stop(text, stop)
            if stopped:
                if len(cut) > sent:
                    yield cut[sent:]
                break
            ready = len(text) - hold
            if ready > sent:
                yield text[sent:ready]
                sent = ready
        if stopped:
            for _ in streamer:  # generation halts at the stop string too: drain its last pieces
                pass
        thread.join()
        if failure:
            raise failure[0]
        if not stopped and len(text) > sent:
            yield text[sent:]

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        return {e for e in eos + [self.tokenizer.eos_token_id] if e is not None}

    def info(self) -> dict[str, Any]:
        cfg = self.model.config.get_text_config()
        return {
            "base_model": self.config.base_model,
            "architecture": type(self.model).__name__,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "hidden_size": cfg.hidden_size,
            "layers": cfg.num_hidden_layers,
            "embedding_dimension": self.get_embedding_dimension(),
            "special_tokens": dict(zip(self.config.special_tokens, self.special_ids, strict=True)),
            "readout": self.config.readout,
            "adapter_scope": self.config.adapter_scope,
            "max_length": self.config.max_length,
            "prompts": self.config.prompts,
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": str(self.device),
        }


class _StopOnText(StoppingCriteria):
    """Stop once a stop string appears in the *generated* text (transformers' own stop_strings
    also match across the prompt boundary, which the OpenAI semantics do not)."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, prompt_len: int, stops: list[str]
    ) -> None:
        self.tokenizer, self.prompt_len, self.stops = tokenizer, prompt_len, [s for s in stops if s]

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        done = [
            any(
                s in self.tokenizer.decode(row[self.prompt_len :], skip_special_tokens=True)
                for s in self.stops
            )
            for row in input_ids
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _context_limit(model: PreTrainedModel) -> int:
    """Longest text the embedding path may use: the position limit, and the sliding window if
    any (the k > 1 GEM mask is full causal, so texts must fit inside the window)."""
    cfg = model.config.get_text_config()
    limits = [getattr(cfg, "max_position_embeddings", None), getattr(cfg, "sliding_window", None)]
    return min([x for x in limits if x] or [512])


def _cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """Text up to the first stop string (excluded, as in the OpenAI API).

    >>> _cut_at_stop("Paris.\\nQ: next", ["\\nQ:"])
    ('Paris.', True)
    """
    hits = [text.find(s) for s in stop or [] if s and s in text]
    return (text[: min(hits)], True) if hits else (text, False)
