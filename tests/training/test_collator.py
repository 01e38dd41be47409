"""GEMCollator (mixed NTP with GEM specials) and ContrastiveCollator (anchor/positive views)."""

from __future__ import annotations

import pytest
import torch

from gemlm import masking
from gemlm.masking import PAD, PREFIX, SPECIAL, SUFFIX
from gemlm.training.collator import IGNORE, ContrastiveCollator, GEMCollator

SPECIALS = [1, 2, 3]  # special ids; text tokens are >= 100 and all distinct
PAD_ID = 7


def texts(lengths: list[int], start: int = 100) -> list[list[int]]:
    """Texts of distinct tokens, so every token's origin can be traced in the output."""
    out = []
    for n in lengths:
        out.append(list(range(start, start + n)))
        start += n
    return out


def features(seqs: list[list[int]]) -> list[dict]:
    return [{"input_ids": s} for s in seqs]


def real_row(batch: dict, i: int, key: str = "input_ids") -> list[int]:
    """Row i of ``key`` without its padding."""
    return batch[key][i][batch["segments"][i] != PAD].tolist()


def run_lengths(segments: torch.Tensor) -> dict[int, int]:
    """Number of positions of each segment id in one row."""
    return {s: int((segments == s).sum()) for s in (PAD, PREFIX, SPECIAL, SUFFIX)}


def is_subsequence(small: list[int], big: list[int]) -> bool:
    it = iter(big)
    return all(t in it for t in small)


# --------------------------------------------------------------------------- GEMCollator


def gem(**kwargs) -> GEMCollator:
    """A GEMCollator that always inserts all three specials in split format, seeded."""
    defaults = {"special_ids": SPECIALS, "pad_id": PAD_ID, "gem_prob": 1.0, "format": "split"}
    return GEMCollator(**{**defaults, "seed": 0, **kwargs})


def test_gem_prob_zero_leaves_every_sequence_plain():
    seqs = texts([30, 30, 30, 30])
    c = gem(gem_prob=0.0)
    b = c(features(seqs))
    assert b["input_ids"].tolist() == seqs
    assert torch.equal(b["labels"], b["input_ids"])
    assert b["attention_mask"].shape == (4, 30)
    assert torch.equal(b["attention_mask"], torch.ones(4, 30, dtype=torch.long))
    assert not (b["segments"] == SPECIAL).any()
    assert not (b["segments"] == SUFFIX).any()


@pytest.mark.parametrize("k", [1, 3])
def test_split_inserts_k_contiguous_specials_and_keeps_length(k):
    specials = SPECIALS[:k]
    seqs = texts([24] * 16)
    c = gem(special_ids=specials, min_prefix=3, min_suffix=4)
    b = c(features(seqs))
    assert b["input_ids"].shape == (16, 24)
    for i, text in enumerate(seqs):
        row = b["input_ids"][i].tolist()
        pos = [j for j, t in enumerate(row) if t in specials]
        assert len(pos) == k
        assert pos == list(range(pos[0], pos[0] + k))  # contiguous
        assert row[pos[0] : pos[0] + k] == specials
        cut = pos[0]
        assert cut >= 3 and len(row) - cut - k >= 4
        assert row == text[:cut] + specials + text[cut : 24 - k]
        assert run_lengths(b["segments"][i]) == {
            PAD: 0,
            PREFIX: cut,
            SPECIAL: k,
            SUFFIX: 24 - cut - k,
        }


def test_split_labels_ignore_exactly_specials_and_padding():
    seqs = texts([20, 26, 31, 18])
    c = gem(min_prefix=4, min_suffix=4, seed=3)
    b = c(features(seqs))
    ignored = b["labels"] == IGNORE
    is_special = torch.isin(b["input_ids"], torch.tensor(SPECIALS))
    is_pad = b["segments"] == PAD
    assert is_special.sum() == 3 * len(seqs)
    assert is_pad.any()
    assert torch.equal(ignored, is_special | is_pad)
    assert torch.equal(b["labels"][~ignored], b["input_ids"][~ignored])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_split_mask_is_the_gem_mask_with_suffix_blind_to_prefix(dtype):
    seqs = texts([20, 26, 31, 18])
    c = gem(min_prefix=4, min_suffix=4, mask_dtype=dtype, seed=1)
    b = c(features(seqs))
    mask, seg = b["attention_mask"], b["segments"]
    assert mask.shape == (4, 1, 31, 31)
    assert mask.dtype == dtype
    assert torch.equal(mask, masking.gem_attention_mask(seg, dtype))
    lowest = torch.finfo(dtype).min
    for i in range(4):
        block = mask[i, 0][seg[i] == SUFFIX][:, seg[i] == PREFIX]
        assert block.numel() > 0
        assert (block == lowest).all()
        # and the suffix does see the specials (the only route to the prefix)
        assert (mask[i, 0][seg[i] == SUFFIX][:, seg[i] == SPECIAL] == 0).all()


@pytest.mark.parametrize("n", [20, 21])
def test_reconstruction_repeats_the_first_half(n):
    k = 2
    (text,) = texts([n])
    c = gem(special_ids=SPECIALS[:k], format="reconstruction", min_prefix=4)
    b = c(features([text]))
    h = (n - k) // 2
    assert real_row(b, 0) == text[:h] + SPECIALS[:k] + text[:h]
    assert run_lengths(b["segments"][0])[PREFIX] == h
    assert run_lengths(b["segments"][0])[SUFFIX] == h


def classify(row: list[int], text: list[int], k: int) -> str:
    """'reconstruction' when the part after the specials restarts the text, else 'split'."""
    pos = next(j for j, t in enumerate(row) if t in SPECIALS)
    after = row[pos + k :]
    if after == text[: len(after)]:
        return "reconstruction"
    assert row == text[:pos] + SPECIALS[:k] + text[pos : len(text) - k]
    return "split"


def test_mixed_format_produces_both_kinds():
    seqs = texts([30] * 60)
    c = gem(special_ids=SPECIALS[:1], format="mixed", min_prefix=4, min_suffix=4)
    b = c(features(seqs))
    kinds = [classify(real_row(b, i), seqs[i], 1) for i in range(len(seqs))]
    assert 15 <= kinds.count("split") <= 45
    assert 15 <= kinds.count("reconstruction") <= 45


@pytest.mark.parametrize("seed", [0, 1])
def test_gem_prob_gives_the_paper_share_of_gem_rows(seed):
    c = gem(special_ids=SPECIALS[:1], gem_prob=0.2, min_prefix=8, min_suffix=8, seed=seed)
    rows = with_specials = 0
    for _ in range(20):
        b = c(features(texts([32] * 100)))
        rows += b["input_ids"].shape[0]
        with_specials += int((b["segments"] == SPECIAL).any(-1).sum())
    assert rows == 2000
    assert abs(with_specials / rows - 0.2) <= 0.03


@pytest.mark.parametrize("fmt", ["split", "reconstruction", "mixed"])
def test_sequences_shorter_than_min_length_stay_plain(fmt):
    c = gem(format=fmt, min_prefix=5, min_suffix=4)
    m = c.min_length()
    assert m == {"split": 12, "reconstruction": 13, "mixed": 13}[fmt]
    short, exact = texts([m - 1, m])
    b = c(features([short, exact]))
    assert real_row(b, 0) == short
    assert not (b["segments"][0] == SPECIAL).any()
    assert torch.equal(b["labels"][0, : m - 1], torch.tensor(short))
    assert (b["segments"][1] == SPECIAL).sum() == 3  # the boundary length does get the specials


def test_variable_lengths_are_right_padded():
    seqs = texts([3, 6, 1])
    c = gem(gem_prob=0.0)
    b = c(features(seqs))
    assert b["input_ids"].shape == (3, 6)
    for i, s in enumerate(seqs):
        n = len(s)
        assert b["input_ids"][i, :n].tolist() == s
        assert (b["input_ids"][i, n:] == PAD_ID).all()
        assert (b["segments"][i, n:] == PAD).all()
        assert (b["labels"][i, n:] == IGNORE).all()
        assert b["position_ids"][i, :n].tolist() == list(range(n))
        assert b["attention_mask"][i].tolist() == [1] * n + [0] * (6 - n)


def test_position_ids_count_specials_and_suffix_too():
    seqs = texts([20, 14])
    c = gem(min_prefix=3, min_suffix=3)
    b = c(features(seqs))
    assert b["position_ids"][0].tolist() == list(range(20))
    assert b["position_ids"][1, :14].tolist() == list(range(14))


def gem_batch(seed: int) -> dict:
    c = gem(
        special_ids=SPECIALS[:1],
        gem_prob=0.5,
        format="mixed",
        min_prefix=2,
        min_suffix=2,
        seed=seed,
    )
    return c(features(texts([40, 33, 50, 27] * 4)))


def test_same_seed_gives_identical_batches():
    a, b = gem_batch(5), gem_batch(5)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_different_seed_gives_different_split_points():
    def cuts(seed: int) -> list[int]:
        c = gem(special_ids=SPECIALS[:1], min_prefix=2, min_suffix=2, seed=seed)
        b = c(features(texts([50] * 8)))
        return (b["segments"] == PREFIX).sum(-1).tolist()

    assert cuts(0) == cuts(0)
    assert cuts(0) != cuts(1)


@pytest.mark.parametrize("kwargs", [{"format": "bogus"}, {"gem_prob": 1.5}, {"gem_prob": -0.1}])
def test_bad_gem_config_raises(kwargs):
    with pytest.raises(ValueError):
        GEMCollator(special_ids=SPECIALS, pad_id=PAD_ID, **kwargs)


# --------------------------------------------------------------------- ContrastiveCollator


def contrastive(seqs: list[list[int]], **kwargs) -> dict:
    kwargs = {"special_ids": SPECIALS[:1], "pad_id": PAD_ID, "seed": 0, **kwargs}
    return ContrastiveCollator(**kwargs)(features(seqs))


def test_contrastive_anchors_are_texts_and_positives_are_subsequences():
    seqs = texts([30, 12, 25, 40])
    B = len(seqs)
    b = contrastive(seqs, dropout=0.3)
    assert b["input_ids"].shape[0] == 2 * B
    shorter = 0
    for i, text in enumerate(seqs):
        assert real_row(b, i) == text + SPECIALS[:1]
        pos = real_row(b, B + i)
        assert pos[-1:] == SPECIALS[:1]
        assert is_subsequence(pos[:-1], text)
        assert 1 <= len(pos) - 1 <= len(text)
        shorter += len(pos) - 1 < len(text)
    assert shorter >= 3  # dropout 0.3 on >= 12 tokens drops something almost surely


def test_contrastive_zero_dropout_gives_identical_halves():
    seqs = texts([9, 4, 7])
    b = contrastive(seqs, special_ids=SPECIALS, dropout=0.0)
    for key in ("input_ids", "segments", "position_ids", "attention_mask"):
        assert torch.equal(b[key][:3], b[key][3:]), key


def test_contrastive_protect_keeps_the_head_and_hides_it_from_labels():
    seqs = texts([20, 15, 30])
    b = contrastive(seqs, dropout=0.5, protect=4)
    for i, text in enumerate(seqs):
        assert b["input_ids"][3 + i, :4].tolist() == text[:4]
    assert (b["labels"][:, :4] == IGNORE).all()


def test_contrastive_positive_labels_are_all_ignored():
    seqs = texts([10, 5, 8])
    b = contrastive(seqs, dropout=0.2)
    assert (b["labels"][3:] == IGNORE).all()


@pytest.mark.parametrize("protect", [0, 2])
def test_contrastive_anchor_labels_are_the_text_except_protected(protect):
    seqs = texts([10, 5, 8])
    b = contrastive(seqs, special_ids=SPECIALS, dropout=0.2, protect=protect)
    T = b["labels"].shape[1]
    for i, text in enumerate(seqs):
        expected = [IGNORE] * protect + text[protect:] + [IGNORE] * (T - len(text))
        assert b["labels"][i].tolist() == expected


@pytest.mark.parametrize(("protect", "length"), [(0, 1), (3, 4)])
def test_contrastive_positive_never_empty(protect, length):
    (text,) = texts([length])
    c = ContrastiveCollator(
        special_ids=SPECIALS[:1], pad_id=PAD_ID, dropout=0.99, protect=protect, seed=0
    )
    for _ in range(50):
        b = c(features([text]))
        assert real_row(b, 1) == text + SPECIALS[:1]


def test_contrastive_high_dropout_still_keeps_a_text_token():
    (text,) = texts([12])
    c = ContrastiveCollator(
        special_ids=SPECIALS[:1], pad_id=PAD_ID, dropout=0.99, protect=2, seed=0
    )
    for _ in range(30):
        pos = real_row(c(features([text])), 1)
        assert pos[:2] == text[:2]
        assert len(pos) - 1 >= 3  # protected head + at least one body token
        assert is_subsequence(pos[:-1], text)


def test_contrastive_several_specials_give_the_gem_mask():
    seqs = texts([6, 3])
    b = contrastive(seqs, special_ids=SPECIALS, dropout=0.0)
    mask = b["attention_mask"]
    assert mask.shape == (4, 1, 9, 9)
    assert torch.equal(mask, masking.gem_attention_mask(b["segments"]))
    # row 0: the specials sit at 6, 7, 8 and do not see each other
    assert mask[0, 0, 8, 6] == torch.finfo(torch.float32).min
    assert mask[0, 0, 8, 8] == 0


def test_contrastive_one_special_gives_a_padding_mask():
    seqs = texts([6, 3])
    b = contrastive(seqs, dropout=0.0)
    assert b["attention_mask"].shape == (4, 7)
    assert torch.equal(b["attention_mask"], (b["segments"] != PAD).long())


@pytest.mark.parametrize("dropout", [1.0, -0.1])
def test_contrastive_bad_dropout_raises(dropout):
    with pytest.raises(ValueError):
        ContrastiveCollator(special_ids=SPECIALS, pad_id=PAD_ID, dropout=dropout)


def test_contrastive_same_seed_same_views():
    seqs = texts([30, 20])
    a = contrastive(seqs, dropout=0.4, seed=9)
    b = contrastive(seqs, dropout=0.4, seed=9)
    assert torch.equal(a["input_ids"], b["input_ids"])


def test_k_gt_1_specials_stay_isolated_even_without_a_suffix() -> None:
    c = GEMCollator(
        special_ids=[90, 91, 92],
        pad_id=0,
        gem_prob=1,
        format="split",
        min_prefix=2,
        min_suffix=1,
        seed=0,
    )
    batch = c([{"input_ids": [1, 2, 3, 4, 5, 6]}])
    assert batch["attention_mask"].dim() == 4


def test_contrastive_readout_suffix_goes_before_the_specials_and_is_no_target() -> None:
    c = ContrastiveCollator(special_ids=[99], pad_id=0, dropout=0.0, suffix_ids=[7, 8], seed=0)
    b = c([{"input_ids": [1, 2, 3]}, {"input_ids": [4]}])
    assert b["input_ids"][0].tolist() == [1, 2, 3, 7, 8, 99]
    assert b["input_ids"][1].tolist() == [4, 7, 8, 99, 0, 0]
    assert b["labels"][0].tolist() == [1, 2, 3, -100, -100, -100]
    assert b["labels"][1].tolist() == [4, -100, -100, -100, -100, -100]


def test_contrastive_pairs_bring_their_own_positive_and_anchor_protect():
    c = ContrastiveCollator(special_ids=[99], pad_id=0, dropout=0.0, protect=1)
    b = c(
        [
            {"input_ids": [7, 8, 3, 4], "positive_ids": [1, 5, 6, 9, 9], "protect": 3},
            {"input_ids": [1, 2], "positive_ids": [1, 6]},
        ]
    )
    rows = [[t for t in r if t != 0] for r in b["input_ids"].tolist()]
    assert rows == [[7, 8, 3, 4, 99], [1, 2, 99], [1, 5, 6, 9, 9, 99], [1, 6, 99]]
    assert b["labels"][0].tolist()[:5] == [IGNORE, IGNORE, IGNORE, 4, IGNORE]  # protect 3
    assert b["labels"][1].tolist()[:3] == [IGNORE, 2, IGNORE]  # the collator's protect 1


def test_contrastive_pair_positives_get_the_dropout_but_keep_the_prompt():
    c = ContrastiveCollator(special_ids=[99], pad_id=0, dropout=0.5, protect=2, seed=0)
    positive = [1, 2] + list(range(10, 40))
    b = c([{"input_ids": [1, 2, 3], "positive_ids": positive}])
    view = [t for t in b["input_ids"][1].tolist() if t not in (0, 99)]
    assert view[:2] == [1, 2] and 2 < len(view) < len(positive)
    assert all(t in positive for t in view)
