"""``dtype="int8"``: the frozen decoder's linear layers as dynamic int8 (torch's x86 backend).

Each ``nn.Linear`` of the decoder (attention q/k/v/o, the MLP's gate/up) becomes
``torch.ao.nn.quantized.dynamic.Linear``: weights stored int8 per output channel, activations
quantized on the fly with one range per call, int8 x int8 dot products (fbgemm: VNNI or AMX where
the CPU has them, AVX2 otherwise) with a float32 result.

What stays float32:
- the MLP's ``down_proj`` (:data:`KEEP_FLOAT`): its input carries the "massive activations" of
  the first token (|x| ~100 in SmolLM2's last layers vs ~1-10 elsewhere), and one range per call
  then leaves every other token a few levels. On the shipped model, 64 STS-B sentences: vectors
  at cosine 0.876 (mean) to float32's with it quantized, 0.977 with it kept float
  (``benchmarks/int8_encode.py --rounds 0``, benchmarks/README.md);
- the token embedding, the norms, attention's softmax, the LM head (tied to the embedding; the
  embedding path never runs it);
- a gated adapter's LoRA A/B and GEM rows, so ``special_only`` keeps its gate: a LoRA layer's
  ``base_layer`` is quantized, its delta is not.

Two consequences a user must know: a text's int8 vector depends slightly on the batch it is
embedded in (the activation range is the call's), and generation is close to the float model's,
not bit-identical. The result is a runtime form for inference: it cannot be trained, saved or
exported (the float model is the artefact).
"""

from __future__ import annotations

import warnings

from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as Int8Linear
from torch.ao.quantization import per_channel_dynamic_qconfig

INT8 = "int8"
KEEP_FLOAT = ("down_proj",)  # module names left float32 (see the module docstring)


def quantize_decoder(model: nn.Module, keep_float: tuple[str, ...] = KEEP_FLOAT) -> list[str]:
    """Swap the decoder's float linear layers of ``model`` (a causal LM, or a peft wrapper of
    one) for dynamic int8 ones, in place, except those with a ``keep_float`` name part. Returns
    the swapped modules' names (within the decoder). LoRA's own ``lora_A``/``lora_B`` layers are
    left float."""
    decoder = model.get_decoder()
    targets = [
        name
        for name, module in decoder.named_modules()
        if type(module) is nn.Linear
        and not any(p.startswith("lora_") or p in keep_float for p in name.split("."))
    ]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = decoder.get_submodule(parent_name) if parent_name else decoder
        linear = getattr(parent, child)
        linear.qconfig = per_channel_dynamic_qconfig
        with warnings.catch_warnings():  # torch points eager quantization users to torchao
            warnings.simplefilter("ignore")
            setattr(parent, child, Int8Linear.from_float(linear))
    if not targets:
        raise ValueError("int8: the model's decoder has no nn.Linear layers to quantize")
    return targets


def quantize_if_int8(model: nn.Module, dtype: object) -> nn.Module:
    """``model`` with :func:`quantize_decoder` applied when ``dtype`` is "int8" (a model is
    loaded float32 first, and quantized after any adapter is attached); else as it is."""
    if dtype == INT8:
        quantize_decoder(model)
    return model


def is_int8(model: nn.Module) -> bool:
    """True when ``model`` holds a dynamic int8 linear layer (see :func:`quantize_decoder`)."""
    return any(isinstance(m, Int8Linear) for m in model.modules())


def refuse_int8(model: nn.Module, action: str) -> None:
    """Raise a clear error for what an int8 runtime model cannot do (save, train, export)."""
    if is_int8(model):
        raise ValueError(
            f"cannot {action} an int8 model: int8 is a runtime form for inference; "
            "load the model with dtype='float32' (or 'auto') to do this"
        )
