"""Embedded vector stores side by side: Qdrant Edge (gemlm's default) vs qdrant-client local mode.

For each size N, N seeded random unit vectors (float32, dimension --dim: 576 is the default
model's embedding size) are written through ``RagStore`` in batches of --batch, as ``gemlm rag
index`` writes them (each batch flushed before the next); then ``RagStore.optimize`` (Qdrant
Edge builds HNSW; a no-op for local mode). --queries queries are timed one at a time (top 10).
The queries are stored vectors plus noise (cosine ~0.8 to the vector they came from, --noise),
the way a question lands near its passage; random queries would have no meaningful neighbours
in 576 dimensions. recall@1 and recall@10 are against exact search (numpy matrix products over
chunks of the stored vectors). Also timed: reopening the store and answering one query (what
every ``gemlm rag ask`` pays), and the folder's size on disk.

qdrant-client local mode keeps every point in memory and searches exhaustively; sizes above
--local-max are not run for it, and the JSON says so. Both engines run in one process, one
after the other, on the same vectors and queries; ratios are local / edge. Edge is also timed
with wider HNSW searches (--ef) to show its recall / latency trade-off; random vectors in 576
dimensions have no structure, so recall@10 there is a pessimistic bound.

    python -m benchmarks.vector_store [--sizes 100000,1000000] [--dim 576] [--queries 1000]
        [--local-max 100000] [--ef 256] [--out benchmarks/results/vector_store.json]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import RESULTS, command_line, md_table, memory_mb, write_result
from gemlm.rag.store import RagStore

COLLECTION = "bench"
ENGINES = ("edge", "local")


def unit_rows(rng: np.random.Generator, n: int, dim: int, chunk: int = 100_000) -> np.ndarray:
    """``n`` random unit vectors, float32, generated in chunks to bound temporary memory."""
    out = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - lo), dim), dtype=np.float32)
        out[lo : lo + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def noisy_queries(
    rng: np.random.Generator, data: np.ndarray, n: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Stored vectors plus ``noise`` times a random unit direction, renormalised."""
    src = rng.choice(len(data), size=min(n, len(data)), replace=False)
    q = data[src] + noise * unit_rows(rng, len(src), data.shape[1])
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32), src


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int, chunk: int = 16_384) -> np.ndarray:
    """Row indices of the ``k`` best cosine scores per query (unit vectors: dot products).

    Chunks of ``chunk`` stored vectors keep the score matrix small (1,000 x 16,384 floats); each
    chunk's top ``k`` is merged into the running top ``k``.
    """
    best_s = np.empty((len(queries), 0), dtype=np.float32)
    best_i = np.empty((len(queries), 0), dtype=np.int64)
    for lo in range(0, len(data), chunk):
        scores = queries @ data[lo : lo + chunk].T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        s = np.concatenate([best_s, np.take_along_axis(scores, part, 1)], axis=1)
        i = np.concatenate([best_i, part + lo], axis=1)
        keep = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, keep, 1), np.take_along_axis(i, keep, 1)
    return best_i


def point_id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))  # a UUID string, like gemlm's content-hash ids


def row_of(point: str) -> int:
    return uuid.UUID(point).int - 1


def folder_bytes(folder: Path) -> int:
    """Bytes allocated on disk (Edge preallocates sparse 32 MiB WAL and storage files)."""
    return sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file())


def write_all(store: RagStore, data: np.ndarray, batch: int) -> float:
    """Upsert every vector in batches (payload like a passage's source/chunk); seconds."""
    ids = [point_id(i) for i in range(len(data))]
    t = time.perf_counter()
    for lo in range(0, len(data), batch):
        hi = min(lo + batch, len(data))
        payloads = [{"source": f"doc{i // 50}", "chunk": i % 50} for i in range(lo, hi)]
        store.upsert(COLLECTION, ids[lo:hi], data[lo:hi], payloads)
    return time.perf_counter() - t


def time_queries(search: Callable[[np.ndarray], list], queries: np.ndarray) -> tuple[Any, list]:
    """Per-query seconds and the returned row indices, after a short warm-up."""
    for q in queries[:10]:
        search(q)
    seconds, found = [], []
    for q in queries:
        t = time.perf_counter()
        hits = search(q)
        seconds.append(time.perf_counter() - t)
        found.append([row_of(h.id) for h in hits])
    return np.array(seconds), found


def latency_and_recall(seconds: np.ndarray, found: list, truth: np.ndarray) -> dict[str, float]:
    ms = seconds * 1e3
    return {
        "search_p50_ms": float(np.percentile(ms, 50)),
        "search_p99_ms": float(np.percentile(ms, 99)),
        "search_mean_ms": float(ms.mean()),
        "recall_at_1": recall(found, truth, 1),
        "recall_at_10": recall(found, truth, 10),
    }


def recall(found: list[list[int]], truth: np.ndarray, k: int) -> float:
    pairs = zip(found, truth, strict=True)
    return float(np.mean([len(set(f[:k]) & set(t[:k].tolist())) / k for f, t in pairs]))


def run_engine(
    engine: str, folder: Path, data: np.ndarray, queries: np.ndarray, truth: np.ndarray, args
) -> dict[str, Any]:
    identity = {"model": "random", "dimension": data.shape[1], "embedding": {}}
    rss0 = memory_mb()["rss_mb"]
    with RagStore(folder, engine=engine) as store:
        store.ensure(COLLECTION, identity)
        upsert_s = write_all(store, data, args.batch)
        t = time.perf_counter()
        store.optimize(COLLECTION)
        build_s = time.perf_counter() - t
        index = store.backend.info(COLLECTION) if engine == "edge" else None
        rss_growth = memory_mb()["rss_mb"] - rss0
        seconds, found = time_queries(lambda q: store.search(COLLECTION, q, args.top_k), queries)
        searched = latency_and_recall(seconds, found, truth)
        wider = {}
        for ef in args.ef if engine == "edge" else []:  # the HNSW recall/latency knob
            search = partial(store.backend.search, COLLECTION, top_k=args.top_k, hnsw_ef=ef)
            wider[str(ef)] = latency_and_recall(*time_queries(search, queries), truth)
        assert store.count(COLLECTION) == len(data)
    t = time.perf_counter()
    with RagStore(folder, engine=engine) as store:
        store.search(COLLECTION, queries[0], args.top_k)
        reopen_s = time.perf_counter() - t
    return {
        "upsert_s": upsert_s,
        "upsert_points_per_s": len(data) / upsert_s,
        "index_build_s": build_s,
        "index": index,
        **searched,
        "with_hnsw_ef": wider,
        "reopen_and_first_query_s": reopen_s,
        "disk_mb": folder_bytes(folder) / 2**20,
        "rss_growth_mb": rss_growth,
    }


def ratios(edge: dict[str, Any], local: dict[str, Any]) -> dict[str, float]:
    keys = ("upsert_s", "search_p50_ms", "search_p99_ms", "reopen_and_first_query_s", "disk_mb")
    return {k: local[k] / edge[k] for k in keys if edge.get(k)}


def run_size(n: int, args, tmp: Path) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed + n)
    data = unit_rows(rng, n, args.dim)
    queries, _ = noisy_queries(rng, data, args.queries, args.noise)
    t = time.perf_counter()
    truth = exact_top_k(data, queries, args.top_k)
    out: dict[str, Any] = {"exact_search_s": time.perf_counter() - t}
    for engine in ENGINES:
        if engine == "local" and n > args.local_max:
            out[engine] = {
                "skipped": f"N={n:,} is above --local-max {args.local_max:,}: local mode holds "
                "every point in Python memory and searches exhaustively (see the estimate from "
                "the smaller sizes)"
            }
            continue
        print(f"N={n:,} {engine} ...", flush=True)
        out[engine] = run_engine(engine, tmp / f"{engine}-{n}", data, queries, truth, args)
        print(f"  {json.dumps(out[engine])}", flush=True)
    if "upsert_s" in out["local"]:
        out["local_over_edge"] = ratios(out["edge"], out["local"])
    return out


def markdown(result: dict[str, Any]) -> str:
    rows = [
        ("upsert (s)", "upsert_s", "{:.1f}"),
        ("optimize: HNSW build (s)", "index_build_s", "{:.1f}"),
        ("search p50 (ms)", "search_p50_ms", "{:.2f}"),
        ("search p99 (ms)", "search_p99_ms", "{:.2f}"),
        ("recall@1", "recall_at_1", "{:.3f}"),
        ("recall@10", "recall_at_10", "{:.3f}"),
        ("reopen + first query (s)", "reopen_and_first_query_s", "{:.2f}"),
        ("disk (MB)", "disk_mb", "{:.0f}"),
    ]
    lines = [
        f"# Embedded vector stores: Qdrant Edge vs qdrant-client local mode (d={result['dim']})",
        "",
        f"`{result['command']}`; {result['queries']} queries = {result['query_kind']}; "
        f"top {result['top_k']}; batches of {result['batch']}.",
        "",
    ]
    for n, res in result["sizes"].items():
        table = []
        for label, key, fmt in rows:
            edge, local = res["edge"].get(key), res["local"].get(key)
            ratio = res.get("local_over_edge", {}).get(key)
            cells = [fmt.format(v) if v is not None else "-" for v in (edge, local)]
            table.append([label, *cells, f"{ratio:.1f}x" if ratio else "-"])
        for ef, r in res["edge"].get("with_hnsw_ef", {}).items():
            table.append(
                [
                    f"Edge with hnsw_ef={ef}: p50 / p99 (ms), recall@1 / @10",
                    f"{r['search_p50_ms']:.2f} / {r['search_p99_ms']:.2f}, "
                    f"{r['recall_at_1']:.3f} / {r['recall_at_10']:.3f}",
                    "",
                    "",
                ]
            )
        header = ["", "Qdrant Edge", "local mode", "local / edge"]
        lines += [f"## N = {int(n):,}", "", *md_table(header, table)]
        if "skipped" in res["local"]:
            lines += ["", f"local mode: skipped ({res['local']['skipped']})"]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=512, help="points per upsert (gemlm: 512)")
    ap.add_argument("--noise", type=float, default=0.75, help="query = stored + noise * random")
    ap.add_argument("--local-max", type=int, default=100_000)
    ap.add_argument(
        "--ef", default="256", help="also time Edge with these hnsw_ef (default search: 100)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", type=Path, default=None, help="where the stores go (needs disk)")
    ap.add_argument("--out", type=Path, default=RESULTS / "vector_store.json")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    args.ef = [int(e) for e in args.ef.split(",") if e]
    result: dict[str, Any] = {
        "command": command_line(),
        "dim": args.dim,
        "queries": args.queries,
        "query_kind": f"stored vectors + {args.noise} x random unit direction "
        f"(cosine ~{1 / np.sqrt(1 + args.noise**2):.2f} to their source)",
        "top_k": args.top_k,
        "batch": args.batch,
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="gemlm-vector-store-", dir=args.tmp) as tmp:
        for n in sizes:
            result["sizes"][str(n)] = run_size(n, args, Path(tmp))
    result["versions"] = {
        p: importlib.metadata.version(p) for p in ("qdrant-edge-py", "qdrant-client", "numpy")
    }
    result["platform"] = platform.platform()
    result["cpus"] = os.cpu_count()
    write_result(args.out, result, markdown=markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
