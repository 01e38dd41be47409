"""Packed embedding forwards: each text's embedding is the one it gets alone."""

from __future__ import annotations

import pytest
import torch

from gemlm import masking
from gemlm.model import GEMModel
from gemlm.packing import first_fit, pack

TEXTS = ["a", "the cat sat on the mat", "dogs bark", "x y", "a much longer text " * 6, "hi"]


def test_first_fit_respects_capacity_and_keeps_every_index() -> None:
    lengths = [7, 1, 3, 8, 2, 2, 5, 12]
    rows = first_fit(lengths, 8)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 8 for row in rows if len(row) > 1)
    assert [7] in rows  # the over-long text sits alone
    assert len(rows) == 5  # 12 | 8 | 7+1 | 5+3 | 2+2


def test_pack_mask_is_block_diagonal_with_gem_rules() -> None:
    p = pack([[1, 2, 9, 9], [3, 9, 9]], k=2, capacity=7)
    assert p.input_ids.shape == (1, 7)
    visible = p.attention_mask()[0, 0] == 0  # (C, C)
    assert visible[4].tolist() == [False] * 4 + [True, False, False]  # not the first text
    assert visible[6].tolist() == [False] * 4 + [True, False, True]  # specials: not each other
    assert visible[3].tolist() == [True, True, False, True, False, False, False]
    segs = p.segments[0].tolist()
    assert segs == [1, 1, 2, 2, 1, 2, 2]
    assert p.special_at.tolist() == [[2, 3], [5, 6]]
    assert (p.docs[0] >= 0).all() and masking.PAD not in segs


def test_pack_rejects_bad_batches() -> None:
    with pytest.raises(ValueError, match="empty"):
        pack([], k=1, capacity=8)
    with pytest.raises(ValueError, match="special"):
        pack([[1, 2], []], k=1, capacity=8)


@pytest.mark.parametrize("k", [1, 2])
def test_packed_embedding_equals_each_text_alone(tiny_dir, k) -> None:
    gem = GEMModel.from_pretrained(tiny_dir, num_special_tokens=k, dtype="float32")
    ids, _ = gem.tokenize_for_embedding(TEXTS)
    want = torch.cat([gem.embed_ids([x]) for x in ids])  # each text alone
    for row_tokens, max_tokens in ((16, 16), (64, 4096)):  # many rows/forwards, or one
        got = gem.embed_ids(ids, packed=True, row_tokens=row_tokens, max_tokens=max_tokens)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
