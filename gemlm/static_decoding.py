"""Opt-in fast decoding: a static KV cache per length bucket, and ``torch.compile``'d steps.

Eager decoding pays Python and dispatch overhead on every token: ~30 layers x a dozen small ops
for a single new position. A :class:`StaticDecoding` gives ``model.generate`` a preallocated
``transformers.StaticCache`` and a ``CompileConfig``, so transformers compiles its decode step
(one new token against a fixed-length cache) once per cache length and replays it. The logits
are the same computation, but compiled kernels may round differently, so token identity is
measured, not promised: greedy output equals eager decoding on the three kinds of model in the
tests and on the shipped model in ``benchmarks/decode_speed.py``.

Cache lengths are bucketed (powers of two from ``smallest``, capped at the model's context)
so that prompts of every length share a handful of compiled graphs; one cache per bucket is
kept and reused. A generation that finds its bucket's cache in use (another thread decoding)
runs eagerly instead of waiting. The first generation of each bucket pays the compile (tens of
seconds on 2 cores): ``warm`` pays it up front (``GenerationEngine.use_static_cache``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transformers import StaticCache
from transformers.generation.configuration_utils import CompileConfig


def bucket(need: int, limit: int, smallest: int = 256) -> int:
    """Cache length for ``need`` positions: the first power of two >= ``need`` from
    ``smallest`` on, at most ``limit`` (the model's context), and never less than ``need``.

    >>> bucket(40, 2048), bucket(300, 2048), bucket(1500, 2048), bucket(3000, 2048)
    (256, 512, 2048, 3000)
    """
    size = smallest
    while size < need:
        size *= 2
    return min(size, max(limit, need))


class StaticDecoding:
    """Static caches (one per bucket) and the compile settings handed to ``model.generate``."""

    def __init__(self, *, compile: bool = True, smallest: int = 256) -> None:
        self.smallest = smallest
        self.compile_config: CompileConfig | None = None
        if compile:
            self.compile_config = CompileConfig(fullgraph=False, dynamic=False, mode="default")
            self.compile_config._compile_all_devices = True  # transformers compiles on GPUs only
        self._caches: dict[int, StaticCache] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def kwargs(self, config: Any, need: int, limit: int) -> Iterator[dict[str, Any]]:
        """``generate`` keywords for a run of ``need`` positions (prompt + new tokens) of a
        model with ``config``: a reset static cache and the compile config, or ``{}`` (eager)
        when that cache is in use."""
        size = bucket(need, limit, self.smallest)
        with self._guard:
            lock = self._locks.setdefault(size, threading.Lock())
        if not lock.acquire(blocking=False):
            yield {}
            return
        try:
            cache = self._caches.get(size)
            if cache is None:
                cache = StaticCache(config=config, max_cache_len=size)
                self._caches[size] = cache
            cache.reset()
            if self.compile_config is None:
                yield {"cache": cache, "disable_compile": True}
            else:
                yield {"cache": cache, "compile_config": self.compile_config}
        finally:
            lock.release()
