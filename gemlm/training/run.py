"""Running a GEM post-training recipe: data -> stage 1 (mixed NTP) -> stage 2 (contrastive) -> save.

Each stage is its own ``GEMTrainer`` run in ``output_dir/<stage>/`` with periodic checkpoints;
a finished stage leaves ``final.safetensors`` (its trainable tensors), so ``resume`` skips it and
continues the next from its latest checkpoint. The final model is saved atomically as a gemlm
folder (LoRA merged into the weights) and as a sentence-transformers folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState

from ..adapter import ADAPTER_DIR, SpecialGate
from ..corpus import load_documents, load_texts, train_eval_split
from ..embedding_format import UNCUT, EmbeddingFormat
from ..evaluation.suite import load_suite
from ..export import export_sentence_transformers
from ..model import GEMModel
from ..paths import data_dir as default_data_dir
from . import distill, negatives
from .args import check_bf16, training_args, uses_bf16
from .collator import ContrastiveCollator, GEMCollator
from .config import GEMTrainingConfig
from .data import tokenize_and_chunk, tokenize_texts
from .logs import write_logs
from .losses import LogitScale
from .module import GEMTrainingModule, bf16_frozen_linears
from .pairs import make_pairs, split_sentences, tokenize_pairs
from .quick_eval import eval_copy, quick_eval
from .trainer import GEMTrainer, apply_lora, load_trainable

logger = logging.getLogger(__name__)


def _resolve_data(cfg: GEMTrainingConfig) -> str:
    path = Path(cfg.train_data).expanduser()
    if path.exists() or path.is_absolute():
        return str(path)
    candidate = default_data_dir(cfg.data_dir) / cfg.train_data
    return str(candidate) if candidate.exists() else cfg.train_data  # else: a hub dataset id


def _sentences(ds, min_words: int):
    def split(batch: dict[str, list[str]]) -> dict[str, list[str]]:
        out = [
            s
            for text in batch["text"]
            for s in split_sentences(text)
            if len(s.split()) >= min_words
        ]
        return {"text": out}

    return ds.map(split, batched=True, remove_columns=ds.column_names)


def _contrastive_rows(
    cfg: GEMTrainingConfig, tok, train_texts, heldout: list[str], fmt: EmbeddingFormat
):
    """Token rows for the contrastive stage, exactly as ``encode`` feeds the model (``fmt``'s
    BOS + prompt + text; the collator adds the tail). ``pair_mix: {dropout: 1}``: sentences (or
    paragraphs) of the training text, each its own positive after dropout. Any other mix: pairs
    cut from whole documents, minus the held-out paragraphs
    (:func:`gemlm.training.pairs.make_pairs`)."""
    if not cfg.uses_pairs:
        units = (
            _sentences(train_texts, cfg.min_words)
            if cfg.contrastive_unit == "sentence"
            else train_texts
        )
        return tokenize_texts(units, tok, cfg.contrastive_max_len, fmt=fmt, role="document")
    held = set(heldout)
    docs = load_documents(_resolve_data(cfg), min_words=cfg.min_words)
    docs = docs.map(lambda d: {"paragraphs": [p for p in d["paragraphs"] if p not in held]})
    docs = docs.filter(lambda d: len(d["paragraphs"]) > 0)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    pool = cfg.pair_pool_steps or cfg.contrastive_steps
    n = pool * cfg.contrastive_batch_size * cfg.gradient_accumulation_steps
    pairs = make_pairs(
        docs,
        cfg.pair_mix,
        n * world,
        seed=cfg.seed,
        min_words=cfg.min_words,
        ict_keep=cfg.ict_keep,
        topic_batch=cfg.contrastive_batch_size if cfg.pair_batches == "topic" else 0,
        n_topics=cfg.n_topics,
    )
    if cfg.hard_negatives:
        pairs = negatives.from_config(cfg, pairs, tok)
    return tokenize_pairs(
        pairs,
        tok,
        cfg.contrastive_max_len,
        cfg.positive_max_len or cfg.contrastive_max_len,
        fmt=fmt,
    )


def latest_complete_checkpoint(stage_dir: Path) -> str | None:
    """The newest checkpoint whose trainer_state.json (written last) parses; a checkpoint left
    half-written by a killed run is removed, so training resumes from the one before it."""
    found = sorted(
        stage_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]), reverse=True
    )
    for ckpt in found:
        try:
            json.loads((ckpt / "trainer_state.json").read_text())
            return str(ckpt)
        except (OSError, ValueError):
            logger.warning(
                "removing incomplete checkpoint %s (the run was interrupted while saving)", ckpt
            )
            shutil.rmtree(ckpt, ignore_errors=True)
    return None


def _run_stage(
    name: str,
    cfg: GEMTrainingConfig,
    module: GEMTrainingModule,
    dataset,
    collator,
    steps: int,
    lr: float,
    batch: int,
    resume: bool,
    ordered: bool = False,
) -> list[dict[str, Any]]:
    out = Path(cfg.output_dir) / name
    final = out / "final.safetensors"
    if final.exists():
        logger.warning("stage %s already finished: loading %s", name, final)
        load_trainable(module, final)
        return json.loads((out / "log_history.json").read_text())
    last = latest_complete_checkpoint(out)
    if last and not resume:
        raise FileExistsError(
            f"{out} holds checkpoints: pass --resume to continue, or use another output_dir"
        )
    trainer = GEMTrainer(
        model=module,
        args=training_args(cfg, out, steps, lr, batch, sequential=ordered),
        train_dataset=dataset,
        data_collator=collator,
    )
    trainer.train(resume_from_checkpoint=last if resume else None)
    if trainer.args.should_save:
        trainer._save(str(out))
        (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
        (out / "trainable.safetensors").replace(final)
    return trainer.state.log_history


@dataclass
class Stage:
    """One training stage: its folder under ``output_dir``, schedule, and how to build its
    data, collator and module (built only when the stage runs)."""

    folder: str  # stage1-ntp / stage2-contrastive: checkpoints and final.safetensors
    tag: str  # the "stage" column of the logs
    steps: int
    lr: float
    batch_size: int
    build: Callable[[], tuple[Any, Any, GEMTrainingModule]]
    ordered: bool = False  # the rows are in batches already (topic batches): do not shuffle


def train(cfg: GEMTrainingConfig, resume: bool = False) -> dict[str, Any]:
    """Run the declared stages; return a summary (also written to ``output_dir/summary.json``)."""
    t0 = time.perf_counter()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    torch.manual_seed(cfg.seed)
    check_bf16(cfg)

    gem = _base_model(cfg)
    train_texts, heldout_texts = _corpus(cfg)

    is_main = PartialState().is_main_process  # under DDP only rank 0 evaluates and saves
    summary: dict[str, Any] = {"config": cfg.to_dict()}
    if cfg.quick_eval:  # a missing data folder or a bad suite fails now, not after training
        default_data_dir(cfg.data_dir)
        load_suite(cfg.eval_suite)
    if cfg.quick_eval and is_main:
        if not (out / "before.json").exists():  # measured once per run folder
            before = quick_eval(eval_copy(gem), cfg, heldout_texts)
            (out / "before.json").write_text(json.dumps(before))
        summary["before"] = json.loads((out / "before.json").read_text())

    lm = _trainable_lm(cfg, gem)
    history: list[dict[str, Any]] = []
    for stage in _stages(cfg, gem, lm, train_texts, heldout_texts):
        if stage.steps:
            dataset, collator, module = stage.build()
            rows = _run_stage(
                stage.folder,
                cfg,
                module,
                dataset,
                collator,
                stage.steps,
                stage.lr,
                stage.batch_size,
                resume,
                stage.ordered,
            )
            history += _tag(rows, stage.tag)

    if not is_main:
        return summary
    distill.save_map(cfg)  # the cosine term's map, for analysis: the model never holds it
    scope = cfg.adapter_scope
    if cfg.tuning == "lora" and scope.mergeable:
        lm = lm.merge_and_unload()
    gem.model = lm.eval()
    final = gem.save_pretrained(out / "model")
    if scope.exportable:
        export_sentence_transformers(gem, out / "sentence-transformers")
    if scope.saved_as_adapter:
        summary["adapter_bytes"] = sum(
            f.stat().st_size for f in (final / ADAPTER_DIR).iterdir() if f.is_file()
        )
    write_logs(history, out)
    summary["train_minutes"] = round((time.perf_counter() - t0) / 60, 1)
    if cfg.quick_eval:
        gated = scope.gated  # generates as the base: reuse "before"
        after = quick_eval(eval_copy(gem, final), cfg, heldout_texts, generation=not gated)
        shared = {k: v for k, v in summary.get("before", {}).items() if k not in after}
        summary["after"] = {**after, **(shared if gated else {})}
    summary["model"] = str(final)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def query_prompt(cfg: GEMTrainingConfig) -> str:
    """The prompt before queries (first texts of ict/title pairs): ``prompt`` unless set."""
    return cfg.prompt if cfg.query_prompt is None else cfg.query_prompt


def training_format(cfg: GEMTrainingConfig, gem: GEMModel) -> EmbeddingFormat:
    """What the contrastive stage builds its rows and views with: the model's embedding format
    (max_length, readout suffix, GEM tokens) with the recipe's prompts ("query", "document"),
    which :func:`_base_model` also saves with the model whenever the recipe has one."""
    prompts = {"query": query_prompt(cfg), "document": cfg.prompt}
    return replace(gem.config.embedding_format, prompts=prompts, default_prompt_name="document")


def _base_model(cfg: GEMTrainingConfig) -> GEMModel:
    """The base model with its GEM tokens and the prompts it is trained (and later used) with."""
    gem = GEMModel.from_pretrained(
        cfg.model, num_special_tokens=cfg.num_special_tokens, dtype="float32"
    )
    set_embedding_settings(gem, cfg)
    gem.config.distilled_from = distill.teachers_of(cfg, gem.config.distilled_from)
    return gem


def set_embedding_settings(gem: GEMModel, cfg: GEMTrainingConfig) -> None:
    """The recipe's max_length, prompts (when it has one) and readout suffix, saved with the
    model: its embedding format, which :func:`training_format` trains with."""
    gem.config.max_length = cfg.max_length
    if cfg.prompt or query_prompt(cfg):
        gem.config.prompts = {"query": query_prompt(cfg), "document": cfg.prompt}
        gem.config.default_prompt_name = "document"
    gem.config.readout_suffix = cfg.readout_suffix


def _corpus(cfg: GEMTrainingConfig) -> tuple[Any, list[str]]:
    """(train texts, held-out texts): the held-out slice is never trained on."""
    texts = load_texts(_resolve_data(cfg), text_column=cfg.text_column, min_words=cfg.min_words)
    if cfg.max_train_rows:
        texts = texts.select(range(min(cfg.max_train_rows + cfg.eval_rows, len(texts))))
    train_texts, heldout = train_eval_split(texts, eval_rows=cfg.eval_rows, seed=cfg.seed)
    return train_texts, list(heldout["text"])


def _trainable_lm(cfg: GEMTrainingConfig, gem: GEMModel) -> Any:
    """The causal LM as trained: LoRA (gated to the GEM positions with special_only) or full."""
    lm = gem.model
    if cfg.tuning == "lora":
        lm = apply_lora(
            lm,
            gem.special_ids,
            cfg.lora_r,
            cfg.lora_alpha,
            cfg.lora_dropout,
            cfg.lora_target_modules,
        )
        if cfg.adapter_scope.gated:  # the gate and the scope that makes the engine use it
            SpecialGate(lm, gem.special_ids)
            gem.config.adapter_scope = cfg.adapter_scope
            gem.config.base_model = cfg.model
    if cfg.frozen_text and uses_bf16(cfg):  # bit-identical under autocast, no per-step weight cast
        logger.info("frozen base Linear weights stored in bf16: %d", bf16_frozen_linears(lm))
    if cfg.gradient_checkpointing and cfg.frozen_text:
        logger.warning(
            "gradient_checkpointing is skipped: special_only + skip_frozen keeps "
            "activations only for the GEM tokens, and needs the KV cache it disables"
        )
    elif cfg.gradient_checkpointing:
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return lm


def _stages(
    cfg: GEMTrainingConfig, gem: GEMModel, lm: Any, train_texts: Any, heldout_texts: list[str]
) -> list[Stage]:
    """Stage 1, mixed NTP (GEM rows among plain text), then stage 2, contrastive (InfoNCE)."""
    tok = gem.tokenizer
    mask_dtype = torch.bfloat16 if uses_bf16(cfg) else torch.float32

    def ntp() -> tuple[Any, Any, GEMTrainingModule]:
        chunks = tokenize_and_chunk(train_texts, tok, cfg.ntp_seq_len)
        collator = GEMCollator(
            special_ids=gem.special_ids,
            pad_id=gem.pad_id,
            gem_prob=1.0 if cfg.frozen_text else cfg.gem_prob,  # see GEMTrainingConfig
            format=cfg.gem_format,
            min_prefix=cfg.min_prefix,
            min_suffix=cfg.min_suffix,
            mask_dtype=mask_dtype,
            seed=cfg.seed,
        )
        return (
            chunks,
            collator,
            GEMTrainingModule(lm, frozen_text=cfg.frozen_text, mask_dtype=mask_dtype),
        )

    def contrastive() -> tuple[Any, Any, GEMTrainingModule]:
        fmt = training_format(cfg, gem)
        rows = _contrastive_rows(cfg, tok, train_texts, heldout_texts, fmt)
        prompts = [cfg.prompt, query_prompt(cfg)]  # distill_teacher: labelled, never a default
        rows, distill_map = distill.prepare(cfg, rows, tok, lm, prompts)
        collator = contrastive_collator(cfg, gem, fmt, mask_dtype)
        module = GEMTrainingModule(
            lm,
            LogitScale(cfg.logit_scale_init, cfg.logit_scale_max),
            cfg.contrastive_alpha,
            frozen_text=cfg.frozen_text,
            micro_batch=cfg.contrastive_micro_batch,
            mask_dtype=mask_dtype,
            matryoshka_dims=cfg.matryoshka_dims,
            distill_weight=cfg.distill_weight,  # used only on batches with teacher vectors
            distill_temperature=cfg.distill_temperature,
            grad_cache=cfg.grad_cache,
            distill_cosine_weight=cfg.distill_cosine_weight,
            distill_map=distill_map,
        )
        return rows, collator, module

    return [
        Stage("stage1-ntp", "ntp", cfg.ntp_steps, cfg.ntp_lr, cfg.ntp_batch_size, ntp),
        Stage(
            "stage2-contrastive",
            "contrastive",
            cfg.contrastive_steps,
            cfg.contrastive_lr,
            cfg.contrastive_batch_size,
            contrastive,
            ordered=cfg.pair_batches == "topic",
        ),
    ]


def contrastive_collator(
    cfg: GEMTrainingConfig, gem: GEMModel, fmt: EmbeddingFormat, mask_dtype: torch.dtype
) -> ContrastiveCollator:
    """The contrastive stage's collator: views finished by ``fmt``'s builder (the rows are cut
    already), BOS + the document prompt protected from dropout."""
    return ContrastiveCollator(
        special_ids=gem.special_ids,
        pad_id=gem.pad_id,
        dropout=cfg.token_dropout,
        protect=fmt.head_length(gem.tokenizer, "document"),
        mask_dtype=mask_dtype,
        seed=cfg.seed,
        tokenize=fmt.tokenize_fn(gem.tokenizer, room=UNCUT),
    )


def _tag(history: list[dict[str, Any]], stage: str) -> list[dict[str, Any]]:
    return [{**row, "stage": stage} for row in history]
