"""Mined hard negatives: the false-negative filter, the saved choice, the 3-view batch and loss,
and a special_only run that mines with a gemlm model and with a teacher."""

from __future__ import annotations

import json
import shutil

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gemlm.training import distill, module, negatives
from gemlm.training.collator import ContrastiveCollator
from gemlm.training.config import GEMTrainingConfig
from gemlm.training.losses import distill_kl, info_nce
from gemlm.training.run import train

from .test_distill import FakeTeacher
from .test_trainer import SENTENCES, tiny_config, wiki_folder


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_pick_skips_its_own_document_and_near_duplicates() -> None:
    q = unit(np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0.05, 0]]))
    p = unit(np.array([[1.0, 0.3, 0], [0, 1, 0.2], [0, 0.1, 1], [1, 0, 0]]))
    docs = np.array([0, 1, 2, 0])  # rows 0 and 3 share a document
    chosen, skipped = negatives.pick_negatives(q, p, docs, margin=0.95, depth=4)
    # row 0: its best other row is 3, same document -> skipped silently; next best is row 1
    assert chosen[0] == 1 and skipped[0] == 0
    # row 3's query is ~ row 0's positive (same doc): not a negative; row 1 is the pick
    assert chosen[3] == 1
    # a candidate scoring above 0.95 x the own positive is a likely false negative
    q2 = unit(np.array([[1.0, 0, 0], [1.0, 0.02, 0]]))
    p2 = unit(np.array([[1.0, 0.1, 0], [1.0, 0.0, 0]]))
    chosen2, skipped2 = negatives.pick_negatives(q2, p2, np.array([0, 1]), 0.95, 2)
    assert chosen2.tolist() == [negatives.NONE, negatives.NONE] and skipped2.tolist() == [1, 1]
    kept, _ = negatives.pick_negatives(q2, p2, np.array([0, 1]), margin=2.0, depth=2)
    assert kept.tolist() == [1, 0]  # no filter: the near-duplicates are taken


def test_depth_bounds_the_search_and_random_fill_keeps_documents_apart() -> None:
    rng = np.random.default_rng(0)
    q, p = unit(rng.normal(size=(50, 8))), unit(rng.normal(size=(50, 8)))
    docs = np.arange(50) // 5
    chosen, _ = negatives.pick_negatives(q, p, docs, margin=0.95, depth=1)
    assert (chosen == negatives.NONE).any()  # its single best row is often its own
    filled = negatives.fill_random(chosen, docs, seed=0)
    assert (filled != negatives.NONE).all() and (docs[filled] != docs).all()
    assert (filled[chosen != negatives.NONE] == chosen[chosen != negatives.NONE]).all()
    with pytest.raises(ValueError, match="another document"):
        negatives.fill_random(np.array([negatives.NONE] * 2), np.array([0, 0]))


def pairs_ds(n: int = 12) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "query": [f"query {i} " + SENTENCES[i % len(SENTENCES)] for i in range(n)],
            "positive": [f"passage {i} " + SENTENCES[(i + 1) % len(SENTENCES)] for i in range(n)],
            "source": ["ict"] * n,
            "doc": list(range(n)),
        }
    )


def test_add_negatives_saves_its_choice_and_mines_again_only_for_another_pool(tmp_path) -> None:
    teacher = FakeTeacher()
    encode = negatives.teacher_encoder(teacher)
    pairs = pairs_ds()
    out = negatives.add_negatives(pairs, encode, "fake", tmp_path, 0.95, 4)
    assert out["negative"][0] in pairs["positive"] and out["negative"][0] != pairs["positive"][0]
    saved = json.loads((tmp_path / negatives.FILE).read_text())
    assert saved["stats"]["pairs"] == 12 and len(saved["negatives"]) == 12
    calls = teacher.calls
    again = negatives.add_negatives(pairs, encode, "fake", tmp_path, 0.95, 4)
    assert teacher.calls == calls and again["negative"] == out["negative"]  # resumed: no mining
    negatives.add_negatives(pairs, encode, "fake", tmp_path, 0.9, 4)
    assert teacher.calls > calls  # another filter is another choice


def test_the_miner_sees_the_texts_cut_as_training_cuts_them(tmp_path, tokenizer) -> None:
    """Queries and positives are mined at the run's token budget, not whole; the negative
    column keeps the whole positive (the collator cuts it); another budget mines again."""
    seen: dict[str, list[str]] = {}

    def encode(texts: list[str], role: str) -> np.ndarray:
        seen[role] = texts
        return unit(np.random.default_rng(len(texts[0])).normal(size=(len(texts), 4)))

    pairs = pairs_ds()
    view = negatives.TrainingView(tokenizer, query=3, positive=5)
    out = negatives.add_negatives(pairs, encode, "m", tmp_path, 0.95, 4, view=view)
    lengths = {r: [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
               for r, texts in seen.items()}  # fmt: skip
    assert max(lengths["query"]) <= 3 and max(lengths["document"]) <= 5
    assert seen["document"][0] != pairs["positive"][0]  # cut
    assert pairs["positive"][0].startswith(seen["document"][0].strip())  # its head
    assert set(out["negative"]) <= set(pairs["positive"])  # whole texts
    seen.clear()
    negatives.add_negatives(pairs, encode, "m", tmp_path, 0.95, 4, view=view)
    assert not seen  # the same cut: the saved choice
    negatives.add_negatives(pairs, encode, "m", tmp_path, 0.95, 4, view=negatives.TrainingView(
        tokenizer, query=3, positive=6))  # fmt: skip
    assert seen  # another cut is another pool


def test_info_nce_ranks_the_positive_against_the_mined_negatives_too() -> None:
    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randn(4, 6, generator=g) for _ in range(3))
    scale = torch.tensor(10.0)
    got = info_nce(a, p, scale, n)["loss"]
    an, pn, nn_ = (F.normalize(x, dim=-1) for x in (a, p, n))
    logits = scale * an @ torch.cat([pn, nn_]).T  # (4, 8)
    target = torch.arange(4)
    want = (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, :4].T, target)) / 2
    torch.testing.assert_close(got, want)
    # a negative that is its anchor's twin costs more than one pointing away
    assert info_nce(a, p, scale, a)["loss"] > info_nce(a, p, scale, -a)["loss"]
    assert torch.equal(info_nce(a, p, scale)["loss"], info_nce(a, p, scale, None)["loss"])


def test_distill_kl_over_the_negatives_is_zero_only_when_they_agree() -> None:
    e = torch.randn(9, 5, generator=torch.Generator().manual_seed(1))
    scale = torch.tensor(1 / 0.05)
    assert distill_kl(e, e, scale, 0.05, anchors=3).item() == pytest.approx(0.0, abs=1e-6)
    moved = e.clone()
    moved[6:] = -moved[6:]  # the teacher ranks the negatives differently
    assert distill_kl(e, moved, scale, 0.05, anchors=3).item() > 1e-3
    assert distill_kl(e[:6], moved[:6], scale, 0.05, anchors=3).item() == pytest.approx(0, abs=1e-6)


def test_collator_adds_the_negatives_as_a_third_block() -> None:
    c = ContrastiveCollator(special_ids=[99], pad_id=0, dropout=0.0, seed=0)
    feats = [
        {"input_ids": [1, 2], "positive_ids": [3, 4], "negative_ids": [5, 6, 7]},
        {"input_ids": [8], "positive_ids": [9], "negative_ids": [10]},
    ]
    b = c(feats)
    assert b["input_ids"].shape[0] == 6 and int(b["pairs"]) == 2
    assert b["input_ids"][4].tolist() == [5, 6, 7, 99] and (b["labels"][2:] == -100).all()
    assert "pairs" not in c([{"input_ids": [1, 2], "positive_ids": [3]}])
    with pytest.raises(ValueError, match="every pair"):
        c([feats[0], {"input_ids": [8], "positive_ids": [9]}])
    with_teacher = [{**f, "teacher_query": [1.0], "teacher_positive": [2.0]} for f in feats]
    for f in with_teacher:
        f["teacher_negative"] = [3.0]
    assert c(with_teacher)["teacher"].flatten().tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


def test_config_checks_what_mining_needs() -> None:
    with pytest.raises(ValueError, match="hard_negatives"):
        GEMTrainingConfig(hard_negatives="teacher", pair_mix={"ict": 1.0})  # no teacher
    with pytest.raises(ValueError, match="hard_negatives"):
        GEMTrainingConfig(hard_negatives="smollm2-135m-gem", pair_mix={"dropout": 1.0})
    with pytest.raises(ValueError, match="hard_negative_margin"):
        GEMTrainingConfig(hard_negatives="x", pair_mix={"ict": 1.0}, hard_negative_margin=0)


@pytest.mark.parametrize("miner", ["gem", "teacher"])
def test_special_only_run_mines_trains_on_three_views_and_reuses_its_choice(
    miner, tiny_llama_dir, tmp_path, monkeypatch
) -> None:
    teacher = FakeTeacher()
    monkeypatch.setattr(distill, "load_teacher", lambda name: teacher)
    loads: list[str] = []
    gem_encoder = negatives.gem_encoder
    monkeypatch.setattr(
        negatives, "gem_encoder", lambda spec: loads.append(spec) or gem_encoder(spec)
    )
    seen: list[int] = []  # rows of negatives each InfoNCE call got
    monkeypatch.setattr(
        module,
        "info_nce",
        lambda a, p, scale, n=None: (
            seen.append(0 if n is None else len(n)) or info_nce(a, p, scale, n)
        ),
    )
    extra = (
        {"hard_negatives": str(tiny_llama_dir)}
        if miner == "gem"
        else {"hard_negatives": "teacher", "distill_teacher": "stand-in", "distill_weight": 1.0}
    )
    cfg = tiny_config(
        tiny_llama_dir,
        wiki_folder(tmp_path, 16),
        tmp_path / "run",
        ntp_steps=0,
        adapter_scope="special_only",
        contrastive_alpha=1.0,
        contrastive_steps=2,
        contrastive_micro_batch=3,
        pair_mix={"ict": 1.0, "crop": 1.0, "title": 1.0},
        positive_max_len=40,
        max_length=64,
        **extra,
    )
    train(cfg)
    run = tmp_path / "run"
    saved = json.loads((run / negatives.FILE).read_text())
    assert saved["stats"]["pairs"] == 2 * 4 and saved["stats"]["miner"] == cfg.hard_negatives
    log = json.loads((run / "log.json").read_text())
    losses = [row["contrastive"] for row in log if "contrastive" in row]
    assert losses and all(np.isfinite(losses))
    assert seen and all(n == 4 for n in seen)  # every step ranked against 4 mined negatives
    assert any("distill" in row for row in log) is (miner == "teacher")
    assert loads == ([str(tiny_llama_dir)] if miner == "gem" else [])
    # interrupted before its first checkpoint: the rerun reuses the mined choice
    calls = teacher.calls
    shutil.rmtree(run / "stage2-contrastive")
    shutil.rmtree(run / "model")
    train(cfg, resume=True)
    assert json.loads((run / negatives.FILE).read_text()) == saved
    assert len(loads) == (1 if miner == "gem" else 0) and teacher.calls == calls
