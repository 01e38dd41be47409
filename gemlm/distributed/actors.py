"""The model actors (one GEMModel per Ray actor) and the Ray session a run uses."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..sources import ModelSourceError, resolve
from .inputs import RAY_INSTALL_HINT, EngineError
from .parts import embeddings_table

DEFAULT_GROUP = 512  # rows per actor call: encode sorts them by length, so little padding
ENCODE_METHODS = ("encode", "encode_document", "encode_query")
ACTOR_START_S = 600  # every actor must be up (model loaded) within this, else a clear error
DATA_SETTINGS = ("enable_progress_bars", "wait_for_min_actors_s", "raise_original_map_exception")


@dataclass(frozen=True)
class ActorSpec:
    """What each actor needs to build its model: plain values, loadable on any worker."""

    model: str  # a folder path (absolute) or an alias / hub id each worker resolves itself
    dtype: str = "auto"
    threads: int = 1  # torch threads per actor, and CPUs Ray reserves for it
    method: str = "encode"  # or encode_document / encode_query (their prompts)
    prompt_name: str | None = None  # only with method="encode"
    batch_size: int = 32  # rows per forward inside one actor call

    def __post_init__(self) -> None:
        if self.method not in ENCODE_METHODS:
            raise ValueError(f"method must be one of {ENCODE_METHODS}, got {self.method!r}")
        if self.threads < 1 or self.batch_size < 1:
            raise ValueError("threads and batch_size must be >= 1")


class Embedder:
    """A Ray Data callable class: one GEMModel per actor, loaded once, fed groups of rows.

    Rows whose id is in ``done`` (already written by an earlier run) or was seen earlier in
    the same group are dropped before embedding. Besides (id, text, vector), each output
    group carries ``_node``, ``_worker``, ``_load_s`` and ``_embed_s`` columns: where and how
    long the work took (the driver sums them into the report and does not write them).
    """

    def __init__(self, spec: ActorSpec, done: Any = None) -> None:
        start = time.perf_counter()
        import ray
        import torch
        from transformers.utils import logging as hf_logging

        from ..model import GEMModel

        torch.set_num_threads(spec.threads)
        hf_logging.set_verbosity_error()
        self.spec = spec
        self.done: frozenset[str] = (
            ray.get(done) if isinstance(done, ray.ObjectRef) else frozenset()
        )
        self.model = GEMModel.from_pretrained(spec.model, dtype=spec.dtype)
        self.dim = self.model.get_embedding_dimension()
        self.node = ray.get_runtime_context().get_node_id()
        self.worker = f"{self.node[:8]}:{os.getpid()}"
        self.load_s = time.perf_counter() - start  # reported once, with the first rows

    def __call__(self, batch: Any) -> Any:
        start = time.perf_counter()
        ids, texts = self._fresh(batch)
        table = embeddings_table(ids, texts, self._encode(texts))
        n = len(ids)
        load = np.zeros(n)
        if n and self.load_s:
            load[0], self.load_s = self.load_s, 0.0
        stats = {
            "_node": pa.array([self.node] * n, pa.string()),
            "_worker": pa.array([self.worker] * n, pa.string()),
            "_load_s": pa.array(load, pa.float64()),
            "_embed_s": pa.array(np.full(n, (time.perf_counter() - start) / max(n, 1))),
        }
        for name, column in stats.items():
            table = table.append_column(name, column)
        return table

    def _fresh(self, batch: Any) -> tuple[list[str], list[str]]:
        ids: list[str] = []
        texts: list[str] = []
        seen: set[str] = set()
        rows = zip(batch.column("id").to_pylist(), batch.column("text").to_pylist(), strict=True)
        for rid, text in rows:
            if rid not in self.done and rid not in seen:
                seen.add(rid)
                ids.append(rid)
                texts.append(text)
        return ids, texts

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        kwargs: dict[str, Any] = {"batch_size": self.spec.batch_size}
        if self.spec.method == "encode":
            kwargs["prompt_name"] = self.spec.prompt_name
        out = getattr(self.model, self.spec.method)(texts, **kwargs)
        return np.asarray(out, dtype=np.float32)


def embed_dataset(ds: Any, spec: ActorSpec, actors: int, group_size: int, done: Any = None) -> Any:
    """``ds`` (id, text) -> (id, text, vector, _stats...) through ``actors`` model actors."""
    from ray.data import ActorPoolStrategy

    return ds.map_batches(
        Embedder,
        fn_constructor_kwargs={"spec": spec, "done": done},
        batch_size=group_size,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=actors),
        num_cpus=spec.threads,
    )


def check_model(name: str) -> None:
    """Fail on the driver, not in N actors, when ``name`` cannot be resolved.

    For an alias this also builds the local cache once here, before actors on this machine
    race to build it.
    """
    try:
        resolve(name)
    except ModelSourceError as exc:
        raise EngineError(str(exc)) from exc


# ---------------------------------------------------------------------- Ray itself
# ---------------------------------------------------------------------- Ray itself
def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or an EngineError saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise EngineError(
            f"the ray engine needs Ray Data, which is not installed: {RAY_INSTALL_HINT} "
            '(or pip install "ray[data]")'
        ) from exc
    return ray


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass
class RaySession:
    ray: Any
    actors: int
    owned: bool  # started here (and shut down on exit)
    init_s: float


@contextmanager
def ray_session(
    address: str | None, actors: int | None, threads: int, progress: bool = False
) -> Iterator[RaySession]:
    """Ray for one run, and how many actors to start.

    An already initialised Ray (a caller's, e.g. a test's) is used as it is. Else ``address``
    connects to a running cluster, or a local Ray is started with ``actors x threads`` CPUs
    (default: this machine's CPUs) and shut down at the end. ``actors`` defaults to the
    cluster's CPUs divided by ``threads``. Usage statistics are off unless
    ``RAY_USAGE_STATS_ENABLED`` says otherwise.
    """
    ray = require_ray()
    start = time.perf_counter()
    owned = not ray.is_initialized()
    if owned:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if address:
            ray.init(address=address)
        else:
            cpus = max(threads, (actors or max(1, available_cpus() // threads)) * threads)
            ray.init(address="local", num_cpus=cpus, include_dashboard=False)
    ctx = ray.data.DataContext.get_current()
    saved = {k: getattr(ctx, k) for k in DATA_SETTINGS}
    # Every actor starts (and loads its model) before rows flow: else the first actor up takes
    # the first groups while the others load, and a pool too big for the cluster would wait
    # forever instead of failing. A worker's EngineError then reaches the driver as itself.
    settings = dict(zip(DATA_SETTINGS, (progress, ACTOR_START_S, True), strict=True))
    for key, value in settings.items():
        setattr(ctx, key, value)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    n = actors or max(1, cpus // threads)
    if n * threads > cpus:
        warnings.warn(
            f"{n} actors x {threads} threads need {n * threads} CPUs but the Ray cluster has "
            f"{cpus}: the actors wait up to {ACTOR_START_S} s for more to join",
            stacklevel=3,
        )
    try:
        yield RaySession(ray, n, owned, time.perf_counter() - start)
    finally:
        for key, value in saved.items():
            setattr(ctx, key, value)
        if owned:
            ray.shutdown()


def user_error(exc: BaseException) -> EngineError | None:
    """The EngineError a worker raised (the innermost one in the chain Ray wraps it in)."""
    found, seen = None, set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, EngineError):
            found = cur
        cur = cur.__cause__ or getattr(cur, "cause", None)
    return None if found is None else EngineError(str(found))
