"""Length-sorted batching under a token budget (padding stays small, memory stays bounded)."""

from __future__ import annotations


def length_batches(
    lengths: list[int], max_tokens: int = 8192, max_batch: int = 64
) -> list[list[int]]:
    """Indices grouped longest first so that ``len(batch) * longest <= max_tokens``.

    >>> length_batches([3, 10, 4, 9], max_tokens=20)
    [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch = batches[-1]
            longest = lengths[batch[0]]
            if len(batch) < max_batch and (len(batch) + 1) * longest <= max_tokens:
                batch.append(i)
                continue
        batches.append([i])
    return batches
