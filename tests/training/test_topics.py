"""Topic-grouped contrastive batches: clusters of related documents, one cluster per batch,
batches kept in order by the Trainer."""

from __future__ import annotations

import random
from pathlib import Path

import datasets
import pytest

from gemlm.training import args as args_mod
from gemlm.training import run
from gemlm.training.config import GEMTrainingConfig
from gemlm.training.pairs import make_pairs
from gemlm.training.topics import random_picker, topic_groups, topic_picker

TOPICS = {
    "guitar": "guitar chord melody band concert song album music",
    "volcano": "volcano lava eruption magma crater ash mountain geology",
    "football": "football goal league match stadium striker season club",
}


def topic_docs(per_topic: int = 12) -> list[tuple[str, list[str], str]]:
    """(title, paragraphs, topic): every sentence names its topic's words, in a shuffled order."""
    rng = random.Random(0)
    docs = []
    for topic, words in TOPICS.items():
        vocab = words.split()
        for i in range(per_topic):
            sentences = [
                f"The {topic} article {i} part {k} is about "
                + " and ".join(rng.sample(vocab, 4))
                + "."
                for k in range(6)
            ]
            docs.append(
                (f"{topic.title()} {i}", [" ".join(sentences[:3]), " ".join(sentences[3:])], topic)
            )
    rng.shuffle(docs)
    return docs


def test_topic_groups_separate_unrelated_topics() -> None:
    docs = topic_docs()
    groups = topic_groups([(t, p) for t, p, _ in docs], n_groups=3, seed=0)
    assert sorted(len(g) for g in groups) == [12, 12, 12]
    for group in groups:
        assert len({docs[i][2] for i in group}) == 1  # one topic per cluster


def test_topic_groups_check_the_count() -> None:
    with pytest.raises(ValueError, match="n_groups"):
        topic_groups([("a", ["b"])], n_groups=2)


def test_the_picker_draws_each_block_from_one_group_without_repeats() -> None:
    groups = [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]
    pick, rng = topic_picker(groups, 30, block=5), random.Random(1)
    picks = [pick(rng, i) for i in range(60)]
    for b in range(12):
        block = picks[5 * b : 5 * b + 5]
        assert len({d // 10 for d in block}) == 1 and len(set(block)) == 5
    # a group smaller than the block: its documents, then random ones
    pick = topic_picker([[0, 1]], 100, block=4)
    block = [pick(rng, i) for i in range(4)]
    assert sorted(block[:2]) == [0, 1]
    rng_a, rng_b = random.Random(3), random.Random(3)  # random_picker = the old uniform draw
    assert [random_picker(9)(rng_a, i) for i in range(20)] == [
        rng_b.randrange(9) for _ in range(20)
    ]


def test_make_pairs_in_topic_batches() -> None:
    docs = topic_docs()
    ds = datasets.Dataset.from_dict(
        {"title": [t for t, _, _ in docs], "paragraphs": [p for _, p, _ in docs]}
    )
    pairs = make_pairs(
        ds, {"title": 1, "ict": 1}, 24, seed=0, min_words=4, topic_batch=6, n_topics=3
    )
    for b in range(4):
        queries = pairs["query"][6 * b : 6 * b + 6]
        topics = {next(t for t in TOPICS if t in q.lower()) for q in queries}
        assert len(topics) == 1, queries
    plain = make_pairs(ds, {"title": 1, "ict": 1}, 24, seed=0, min_words=4)
    mixed = [
        len({next(t for t in TOPICS if t in q.lower()) for q in plain["query"][6 * b : 6 * b + 6]})
        for b in range(4)
    ]
    assert max(mixed) > 1  # random batches mix topics


def test_topic_batches_are_configured_and_not_shuffled(asked_pairs) -> None:
    with pytest.raises(ValueError, match="pair_batches"):
        GEMTrainingConfig(pair_batches="topic")  # the default mix {dropout: 1} has no documents
    with pytest.raises(ValueError, match="pair_batches"):
        GEMTrainingConfig(pair_batches="clustered", pair_mix={"ict": 1})
    cfg = GEMTrainingConfig(pair_batches="topic", pair_mix={"ict": 1}, contrastive_batch_size=8)
    stage = next(s for s in run._stages(cfg, _Gem(), None, None, []) if s.tag == "contrastive")
    assert stage.ordered
    args = args_mod.training_args(cfg, Path("/tmp/unused"), 10, 1.0, 8, sequential=stage.ordered)
    assert args.train_sampling_strategy == "sequential"
    assert args_mod.training_args(cfg, Path("/x"), 10, 1.0, 8).train_sampling_strategy == "random"
    cfg = GEMTrainingConfig(
        pair_batches="topic", pair_mix={"ict": 1}, contrastive_batch_size=8, n_topics=5,
        train_data="/x",
    )  # fmt: skip
    with pytest.raises(asked_pairs.error):
        run._contrastive_rows(cfg, None, None, [], None)
    kwargs = asked_pairs.calls[-1][1]
    assert kwargs["topic_batch"] == 8 and kwargs["n_topics"] == 5


class _Gem:
    tokenizer = None
