"""Distillation from a teacher encoder: teacher vectors of the texts the student sees and the KL
term (a tiny end-to-end run with a stand-in teacher is in test_trainer.py)."""

from __future__ import annotations

import datasets
import numpy as np
import torch

from gemlm.training import distill
from gemlm.training.collator import ContrastiveCollator
from gemlm.training.losses import LogitScale, distill_kl


class FakeTeacher:
    """Records what it embeds; a text's vector depends only on the text."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts, batch_size=32, normalize_embeddings=True):
        self.seen += texts
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
