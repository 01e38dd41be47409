"""A GEM model's parts: a gemlm or Hugging Face folder, a .gguf, an alias or a hub id."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .config import GEMConfig
from .int8 import INT8
from .sampling import ALIAS_DEFAULTS, states_sampling
from .sources import DEFAULT_MODEL, is_gemlm_folder, resolve


def default_dtype() -> torch.dtype:
    """bf16 where the CPU computes it natively (AVX512-BF16 / AMX), else fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return torch.float32
    return torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else torch.float32


def as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """The torch dtype a model loads in: "auto" is :func:`default_dtype`; "int8" loads float32
    (its decoder's linear layers are then quantized: :mod:`gemlm.int8`)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return default_dtype()
    if dtype == INT8:
        return torch.float32
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise ValueError(f"dtype must be one of {sorted(names)}, 'int8' or 'auto', got {dtype!r}")
    return names[dtype]


def dtype_name(dtype: str | torch.dtype) -> str:
    """What a model in ``dtype`` is called in reports: "int8", or the torch dtype's name
    ("auto" resolved here).

    >>> dtype_name(torch.bfloat16), dtype_name("fp32"), dtype_name("int8")
    ('bfloat16', 'float32', 'int8')
    """
    return INT8 if dtype == INT8 else str(as_dtype(dtype)).removeprefix("torch.")


def load(
    name_or_path: str | os.PathLike = DEFAULT_MODEL,
    *,
    num_special_tokens: int | None = None,
    dtype: str | torch.dtype = "auto",
    device: str = "cpu",
    max_length: int | None = None,
    attn_implementation: str = "sdpa",
    adapter: str | os.PathLike | None = None,
    **model_kwargs: Any,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, GEMConfig, str | os.PathLike | None]:
    """(causal LM, tokenizer, GEM config, gated adapter folder or None) of a model argument.

    The config of a model that is not yet a GEM model asks for ``num_special_tokens`` (default
    1) new tokens; ``GEMModel`` adds them. See ``GEMModel.from_pretrained``.
    """
    config: GEMConfig | None = None
    folder = resolve(name_or_path)
    own_path = False  # True: name_or_path is the gated adapter itself
    if adapter is None and is_gemlm_folder(folder):
        config = GEMConfig.load(folder)
        if config.adapter_scope.saved_as_adapter:
            adapter, own_path = folder, True
    if adapter is not None:
        config = GEMConfig.load(adapter)
        if not config.adapter_scope.saved_as_adapter:
            raise ValueError(f"{adapter} is not a gated adapter (adapter_scope='all')")
        if config.base_model is None:  # pragma: no cover - GEMConfig refuses this
            raise ValueError(f"{adapter} does not name its base model")
        if own_path:
            folder = resolve(config.base_model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=as_dtype(dtype), attn_implementation=attn_implementation, **model_kwargs
    ).to(device)
    limit = context_limit(model)
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
    alias_generation_defaults(model, name_or_path, config.base_model)
    if max_length is not None:
        config.max_length = max_length
    if config.max_length > limit:
        raise ValueError(f"max_length={config.max_length} exceeds the model's limit {limit}")
    return model, tokenizer, config, adapter


def alias_generation_defaults(model: PreTrainedModel, *names: object) -> None:
    """Give a model whose ``generation_config`` states no sampling gemlm's defaults for the
    first of ``names`` (the model argument, the base it was trained from) that is a built-in
    model: written into ``generation_config``, so ``save_pretrained`` carries them on."""
    if states_sampling(model.generation_config):
        return
    for name in names:
        defaults = ALIAS_DEFAULTS.get(str(name).lower()) if name else None
        if defaults:
            model.generation_config.update(**defaults)
            return


def context_limit(model: PreTrainedModel) -> int:
    """Longest text the embedding path may use: the position limit, and the sliding window if
    any (the k > 1 GEM mask is full causal, so texts must fit inside the window)."""
    cfg = model.config.get_text_config()
    limits = [getattr(cfg, "max_position_embeddings", None), getattr(cfg, "sliding_window", None)]
    return min([x for x in limits if x] or [512])
