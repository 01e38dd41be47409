"""Topic-grouped contrastive batches: every batch's pairs come from related articles.

In-batch negatives from random articles are easy (a guitar review against a tax law); from one
topic they are near misses, which is what retrieval must tell apart. :func:`topic_groups`
clusters the documents by the words of their title and opening (TF-IDF, mini-batch k-means: no
model, no labels, seconds on the Wikipedia folder); :func:`topic_picker` then draws each block of
``batch_size`` pairs from one cluster, no document twice while the cluster lasts, so the pair
list is already in batches and the Trainer must keep its order (``train_sampling_strategy``
``sequential``; blocks are drawn independently, so the order is as random as a shuffle).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

OPENING_CHARS = 600  # of the first paragraph, beside the title: what an article is about
Picker = Callable[[random.Random, int], int]  # (rng, index of the pair being made) -> document


def topic_groups(
    rows: Sequence[tuple[str, Sequence[str]]], n_groups: int, seed: int = 0
) -> list[list[int]]:
    """Document indices per topic cluster (none empty), from ``(title, paragraphs)`` rows."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not 1 <= n_groups <= len(rows):
        raise ValueError(f"n_groups must be in 1..{len(rows)} (the documents), got {n_groups}")
    texts = [
        f"{title} {title} {paras[0][:OPENING_CHARS] if paras else ''}" for title, paras in rows
    ]
    vectors = TfidfVectorizer(
        max_features=50_000, stop_words="english", sublinear_tf=True, min_df=2
    ).fit_transform(texts)  # (N, V) sparse, rows unit-norm
    labels = MiniBatchKMeans(
        n_clusters=n_groups, random_state=seed, n_init=1, batch_size=4096
    ).fit_predict(vectors)
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    return [groups[k] for k in sorted(groups)]


def random_picker(n_rows: int) -> Picker:
    """Any document, uniformly: the default, independent draws."""
    return lambda rng, i: rng.randrange(n_rows)


def topic_picker(groups: Sequence[Sequence[int]], n_rows: int, block: int) -> Picker:
    """Documents for pair ``i``: each block of ``block`` pairs (``i // block``) draws one group
    (by size), then its documents in a random order without repeats; a group used up before
    its block is full leaves the rest of the block to random documents.

    >>> pick = topic_picker([[0, 1, 2], [3, 4, 5]], 6, block=3)
    >>> rng = random.Random(0)
    >>> first, second = [pick(rng, i) for i in range(3)], [pick(rng, i) for i in range(3, 6)]
    >>> len({d // 3 for d in first}) == len({d // 3 for d in second}) == 1
    True
    """
    if block < 1 or not groups:
        raise ValueError("topic_picker needs a block of at least 1 and some groups")
    sizes = [len(g) for g in groups]
    state: dict[str, object] = {"block": -1, "queue": []}

    def pick(rng: random.Random, i: int) -> int:
        if i // block != state["block"]:
            group = rng.choices(groups, weights=sizes)[0]
            state["block"], state["queue"] = i // block, rng.sample(list(group), len(group))
        queue = state["queue"]
        assert isinstance(queue, list)
        return queue.pop() if queue else rng.randrange(n_rows)

    return pick
