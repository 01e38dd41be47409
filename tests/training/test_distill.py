"""Distillation from a teacher encoder: teacher vectors of the texts the student sees, the KL
and cosine terms, the map trained beside the adapter and dropped from the model (tiny end-to-end
runs with a stand-in teacher here and in test_trainer.py; the vector cache in
test_distill_cache.py)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig

from gemlm.model import GEMModel
from gemlm.training import distill
from gemlm.training.collator import ContrastiveCollator
from gemlm.training.config import GEMTrainingConfig
from gemlm.training.losses import LogitScale, distill_cosine, distill_kl
from gemlm.training.module import GEMTrainingModule
from gemlm.training.run import train

from .test_module import assert_same_grads, contrastive_batch, grads_of, lora_model
from .test_trainer import SENTENCES, tiny_config


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.txt"
    path.write_text("\n".join([f"{a} {b}" for a in SENTENCES for b in SENTENCES] * 3) + "\n")
    return path


class FakeTeacher:
    """Records what it embeds; a text's vector depends only on the text."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.calls = 0

    def encode(self, texts, batch_size=32, normalize_embeddings=True):
        self.seen += texts
        self.calls += 1
        vecs = np.array([[len(t), t.count(" ") + 1, sum(map(ord, t)) % 7 + 1] for t in texts])
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_teacher_sees_the_texts_without_their_prompts(tokenizer) -> None:
    enc = lambda t: tokenizer(t, add_special_tokens=True)["input_ids"]  # noqa: E731
    rows = datasets.Dataset.from_dict(
        {
            "input_ids": [enc("q: the cat sat"), enc("doc: the dog")],
            "positive_ids": [enc("doc: the cat sat on the mat"), enc("doc: the dog sat")],
        }
    )
    teacher = FakeTeacher()
    out = distill.add_teacher_vectors(rows, tokenizer, teacher, ["doc: ", "q: "])
    assert teacher.seen == ["the cat sat", "the dog", "the cat sat on the mat", "the dog sat"]
    assert np.asarray(out["teacher_query"]).shape == (2, 3)
    single = datasets.Dataset.from_dict({"input_ids": [enc("doc: a quick brown fox")]})
    out = distill.add_teacher_vectors(single, tokenizer, FakeTeacher(), ["doc: "])
    assert out["teacher_query"] == out["teacher_positive"]  # a dropout pair: the clean text


def test_collator_stacks_teacher_vectors_anchors_then_positives() -> None:
    c = ContrastiveCollator(special_ids=[99], pad_id=0, dropout=0.0)
    b = c(
        [
            {"input_ids": [1, 2], "teacher_query": [1.0, 0.0], "teacher_positive": [0.0, 1.0]},
            {"input_ids": [3, 4], "teacher_query": [0.6, 0.8], "teacher_positive": [0.8, 0.6]},
        ]
    )
    expected = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6]])
    torch.testing.assert_close(b["teacher"], expected)


def test_distill_kl_is_zero_when_student_matches_and_pulls_otherwise() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(8, 5)
    assert float(distill_kl(teacher, teacher, torch.tensor(20.0), 0.05)) < 1e-6
    student = torch.randn(8, 5, requires_grad=True)
    loss = distill_kl(student, teacher, LogitScale()(), 0.05)
    loss.backward()
    assert float(loss) > 0.01 and float(student.grad.abs().sum()) > 0


def test_distill_cosine_on_hand_made_vectors() -> None:
    e = torch.eye(4)
    assert float(distill_cosine(3 * e, e)) == pytest.approx(0.0, abs=1e-6)  # the scale is free
    assert float(distill_cosine(e[:2], e[2:])) == pytest.approx(1.0, abs=1e-6)  # orthogonal
    assert float(distill_cosine(e[:1], -e[:1])) == pytest.approx(2.0, abs=1e-6)
    half = torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(distill_cosine(*half)) == pytest.approx(0.5, abs=1e-6)  # the rows' mean
    with pytest.raises(ValueError, match="need a map"):
        distill_cosine(torch.ones(2, 5), torch.ones(2, 3))


def test_the_map_exists_only_when_the_dims_differ() -> None:
    assert distill.make_map(8, 8) is None
    proj = distill.make_map(8, 3, seed=1)
    assert proj.weight.shape == (3, 8) and proj.bias is None
    torch.testing.assert_close(proj.weight @ proj.weight.T, torch.eye(3))  # semi-orthogonal
    torch.testing.assert_close(distill.make_map(8, 3, seed=1).weight, proj.weight)
    state = torch.get_rng_state()
    distill.make_map(8, 3, seed=2)
    assert torch.equal(torch.get_rng_state(), state)  # the run's random draws are untouched
    s, t = torch.randn(4, 8), torch.randn(4, 3)
    assert distill_cosine(s, t, proj).shape == ()


def test_gradients_reach_the_map_and_the_student() -> None:
    torch.manual_seed(0)
    student = torch.randn(6, 8, requires_grad=True)
    teacher = torch.nn.functional.normalize(torch.randn(6, 3), dim=-1)
    proj = distill.make_map(8, 3)
    loss = distill_cosine(student, teacher, proj)
    loss.backward()
    assert float(proj.weight.grad.abs().sum()) > 0 and float(student.grad.abs().sum()) > 0
    opt = torch.optim.SGD([student, *proj.parameters()], lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        loss = distill_cosine(student, teacher, proj)
        loss.backward()
        opt.step()
    assert float(loss) < 0.01  # the student (through W) can reach the teacher's vectors


def test_the_module_trains_the_map_and_checkpoints_it(tiny_llama_dir) -> None:
    """The cosine term reaches the map and the adapter, with or without the gradient cache."""
    gem, lm = lora_model(tiny_llama_dir, 2, gated=False)
    batch = contrastive_batch(gem, seed=3)
    batch["teacher"] = torch.nn.functional.normalize(torch.randn(len(batch["input_ids"]), 5), -1)
    scale, proj = LogitScale(), distill.make_map(lm.config.hidden_size, 5)
    kw = {"distill_weight": 0.0, "distill_cosine_weight": 2.0, "distill_map": proj}
    plain = GEMTrainingModule(lm, scale, **kw)
    cached = GEMTrainingModule(lm, scale, micro_batch=3, grad_cache=True, **kw)
    out, grads = grads_of(plain, batch)
    out_cached, grads_cached = grads_of(cached, batch)
    assert "distill_cosine" in out and "distill" not in out
    expected = out["contrastive"] + 2.0 * out["distill_cosine"]
    torch.testing.assert_close(out["loss"].detach(), expected)
    assert float(grads["distill_map.weight"].abs().sum()) > 0
    assert any("lora_A" in n for n in grads)
    assert_same_grads(grads_cached, grads)
    assert "distill_map.weight" in plain.trainable_state()  # in checkpoints, like the scale
    without = GEMTrainingModule(lm, scale, distill_cosine_weight=2.0)  # no teacher in the batch
    assert "distill_map.weight" not in without.trainable_state()
    del batch["teacher"]
    assert "distill_cosine" not in without(**batch)


def test_a_teacher_needs_a_weighted_term() -> None:
    with pytest.raises(ValueError, match="distill_teacher"):
        GEMTrainingConfig(distill_teacher="minilm", distill_weight=0.0)
    with pytest.raises(ValueError, match="distill_cosine_weight"):
        GEMTrainingConfig(distill_cosine_weight=-1.0)
    cfg = GEMTrainingConfig(distill_teacher="minilm", distill_weight=0.0, distill_cosine_weight=1)
    assert cfg.distill_cosine_weight == 1.0
    assert GEMTrainingConfig(distill_weight=0.0).distill_cosine_weight == 0.0  # no teacher: fine


def test_without_a_teacher_nothing_changes(tmp_path) -> None:
    cfg = GEMTrainingConfig(output_dir=str(tmp_path / "run"), distill_cosine_weight=1.0)
    rows = datasets.Dataset.from_dict({"input_ids": [[1, 2, 3]]})
    assert distill.prepare(cfg, rows, None, None, []) == (rows, None)
    assert distill.save_map(cfg) is None
    assert not (tmp_path / "teacher-cache").exists()


def test_training_with_the_cosine_term_saves_the_map_not_in_the_model(
    tiny_llama_dir, corpus, tmp_path, monkeypatch
) -> None:
    teachers: list[FakeTeacher] = []

    def new_teacher(name: str) -> FakeTeacher:
        teachers.append(FakeTeacher())
        return teachers[-1]

    monkeypatch.setattr(distill, "load_teacher", new_teacher)

    def run(folder: str) -> GEMTrainingConfig:
        cfg = tiny_config(
            tiny_llama_dir,
            corpus,
            tmp_path / folder,
            ntp_steps=0,
            contrastive_steps=2,
            contrastive_lr=1e-2,
            distill_teacher="stand-in",
            distill_weight=0.0,
            distill_cosine_weight=1.0,
        )
        train(cfg)
        return cfg

    cfg = run("run")
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert any("distill_cosine" in row for row in log)
    assert not any("distill" in row for row in log)  # the KL term is off (weight 0)
    hidden = AutoConfig.from_pretrained(tiny_llama_dir).hidden_size
    final = load_file(str(tmp_path / "run" / "stage2-contrastive" / "final.safetensors"))
    assert final["distill_map.weight"].shape == (3, hidden)  # checkpointed with the adapter
    saved = load_file(str(tmp_path / "run" / distill.MAP_FILE))
    assert saved["weight"].shape == (3, hidden)  # FakeTeacher's 3 dims <- the student's
    assert not torch.allclose(saved["weight"], distill.make_map(hidden, 3, cfg.seed).weight)
    gem = GEMModel.from_pretrained(tmp_path / "run" / "model")
    assert gem.encode(["the cat sat on the mat"]).shape == (1, hidden)  # the map is dropped
    assert gem.config.distilled_from == "stand-in" == gem.info()["distilled_from"]  # labelled
    miner = GEMTrainingConfig(pair_mix={"ict": 1.0}, hard_negatives=str(tmp_path / "run" / "model"))
    assert distill.teachers_of(miner) == "stand-in"  # negatives mined by a distilled model carry it
    both = GEMTrainingConfig(distill_teacher="minilm", pair_mix={"ict": 1.0})
    assert distill.teachers_of(both, inherited="stand-in") == "stand-in + all-MiniLM-L6-v2"
    assert distill.teachers_of(GEMTrainingConfig()) is None
    assert list((tmp_path / "teacher-cache").glob("*/chunk-*.npy")) and teachers[0].calls >= 1
    run("run2")  # a sibling run over the same texts: the cache has them all
    assert teachers[1].calls == 0
