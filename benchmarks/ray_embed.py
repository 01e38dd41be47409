"""Bulk embedding: Ray actors (2 x 1 thread) vs one process (2 threads) on the same passages.

Passages: SQuAD v1.1 dev paragraphs cut into token windows of ``--chunk-tokens`` (64, no
overlap: the 2,067 paragraphs give 6,342 distinct ones), the first ``--n``. Both arms run in the
same invocation, one after the other, with the same model and dtype:

* one process: plain ``GEMModel.encode_document`` with ``torch.set_num_threads(--threads)``,
  fed ``--group`` passages at a time (what one Ray actor call gets);
* Ray: ``gemlm.distributed.embed_files_ray`` on the same passages as a .jsonl, ``--actors``
  actors x ``--threads-per-actor`` threads, Parquet parts written into a temporary folder.

Ray's pieces are timed so the overhead can be placed: ``ray.init``, reading the dataset (a
separate pass over the same file), actor start-up and model load and the embedding itself
(both measured inside the actors), Parquet writing (driver), and the run's wall time. The
Ray vectors are compared with the one-process vectors (max abs difference, min cosine).

    python -m benchmarks.ray_embed [--n 5000] [--model smollm2-135m-instruct] [--dtype auto]
        [--actors 2] [--threads-per-actor 1] [--threads 2] [--group 512] [--batch-size 32]
        [--out benchmarks/results/ray_embed.json]   (also writes ray_embed.md beside it)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from benchmarks._common import RESULTS, agreement, md_table, squad_dev, write_result
from gemlm.model import GEMModel
from gemlm.rag.documents import Document, chunk_document
from gemlm.sources import DEFAULT_MODEL


def squad_passages(tokenizer: Any, n: int, chunk_tokens: int) -> list[str]:
    """The first ``n`` distinct token windows of the SQuAD dev paragraphs, in file order."""
    data = squad_dev()
    seen: dict[str, None] = {}
    for article in data["data"]:
        for i, para in enumerate(article["paragraphs"]):
            doc = Document(para["context"], "squad-dev", article["title"], f"{i}", split=True)
            for p in chunk_document(doc, tokenizer, chunk_tokens, overlap=0):
                seen.setdefault(" ".join(p.text.split()))  # one line each, for any reader
                if len(seen) == n:
                    return list(seen)
    raise SystemExit(f"only {len(seen)} passages of {chunk_tokens} tokens: lower --n")


def one_process(gem: GEMModel, texts: list[str], group: int, batch_size: int) -> tuple[float, Any]:
    """Seconds and vectors of plain ``encode_document`` over groups of ``group`` passages."""
    gem.encode_document(["warm-up"] * 4, batch_size=batch_size)
    start = time.perf_counter()
    parts = [
        gem.encode_document(texts[i : i + group], batch_size=batch_size)
        for i in range(0, len(texts), group)
    ]
    return time.perf_counter() - start, np.concatenate(parts)


def ray_arm(args: argparse.Namespace, texts: list[str], tmp: Path) -> tuple[dict[str, Any], Any]:
    """Timings of the Ray run, and its vectors in the order of ``texts``."""
    import ray

    from gemlm import distributed as dist

    src = tmp / "passages.jsonl"
    src.write_text(
        "".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts))
    )
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    ray.init(
        address="local", num_cpus=args.actors * args.threads_per_actor, include_dashboard=False
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    init_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        rows = dist.read_inputs(ray, [str(src)]).materialize().count()
        read_s = time.perf_counter() - start
        assert rows == len(texts), rows
        start = time.perf_counter()
        report = dist.embed_files_ray(
            args.model,
            [src],
            tmp / "out",
            dtype=args.dtype,
            actors=args.actors,
            threads_per_actor=args.threads_per_actor,
            batch_size=args.batch_size,
            group_size=args.group,
        )
        call_s = time.perf_counter() - start
    finally:
        ray.shutdown()
    table = dist.read_embeddings(tmp / "out")
    order = np.argsort(np.asarray(table.column("id").to_pylist(), dtype=int))
    vectors = dist.vector_matrix(table)[order]
    assert report.written == len(texts) == len(vectors), report
    t = report.timings
    timings = {
        "ray_init_s": init_s,
        "dataset_read_s (separate pass)": read_s,
        "embed_files_ray_s": call_s,
        "first_rows_s": t["first_rows_s"],
        "stream_s": t["run_s"],
        "actor_load_s (mean per actor)": t["actor_load_s"] / max(report.actors, 1),
        "actor_embed_s (mean per actor)": t["actor_embed_s"] / max(report.actors, 1),
        "parquet_write_s (driver)": t["write_s"],
        "read_existing_ids_s": t["read_existing_s"],
    }
    return {"actors_used": report.actors, "parts": len(report.parts), "timings": timings}, vectors


def markdown(r: dict[str, Any]) -> str:
    s, ray_ = r["one_process"], r["ray"]
    one = f"one process, `encode_document`, {r['threads']} threads"
    up = "Ray, embedding run (`embed_files_ray`, Ray already up)"
    runs = [  # (label, seconds, passages/s)
        (one, s["seconds"], s["texts_per_s"]),
        (up, ray_["seconds"], ray_["texts_per_s"]),
        ("Ray, incl. `ray.init`", ray_["seconds_incl_init"], ray_["texts_per_s_incl_init"]),
    ]
    lines = [
        f"# Bulk embedding: Ray {r['actors']} actors x {r['threads_per_actor']} thread vs one "
        f"process x {r['threads']} threads",
        "",
        f"{r['passages']:,} SQuAD-dev passages ({r['chunk_tokens']}-token windows, "
        f"{r['mean_tokens']:.1f} tokens each with the readout), model `{r['model']}`, "
        f"{r['dtype']}, groups of {r['group']} passages, forwards of {r['batch_size']}.",
        "",
        *md_table(
            ["", "seconds", "passages/s"],
            [[name, f"{sec:.1f}", f"{rate:.1f}"] for name, sec, rate in runs],
        ),
        "",
        f"Throughput, Ray / one process: **{r['ratio']:.2f}x** (run), "
        f"{r['ratio_incl_init']:.2f}x (incl. `ray.init`); counting only the time the actors "
        f"spent embedding: {r['ratio_actor_embed_only']:.2f}x. Actors that got work: "
        f"{ray_['actors_used']} of {r['actors']}; parts written: {ray_['parts']}.",
        "",
        "Where Ray's time goes (seconds):",
        "",
        *md_table(["piece", "s"], [[k, f"{v:.2f}"] for k, v in ray_["timings"].items()]),
        "",
        f"Vectors, Ray vs one process: max abs difference {r['max_abs_diff']:.2e}, "
        f"min cosine {r['min_cosine']:.6f}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--threads-per-actor", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the one process")
    ap.add_argument("--group", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--chunk-tokens", type=int, default=64)
    ap.add_argument("--out", type=Path, default=RESULTS / "ray_embed.json")
    args = ap.parse_args()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    gem = GEMModel.from_pretrained(args.model, dtype=args.dtype)
    load_s = time.perf_counter() - start
    texts = squad_passages(gem.tokenizer, args.n, args.chunk_tokens)
    ids, _ = gem.tokenize_for_embedding(texts, role="document")
    dtype = gem.precision
    single_s, single_vecs = one_process(gem, texts, args.group, args.batch_size)
    print(f"one process: {len(texts) / single_s:.1f} passages/s", flush=True)
    del gem
    gc.collect()

    with tempfile.TemporaryDirectory(prefix="gemlm-ray-embed-") as tmp:
        ray_res, ray_vecs = ray_arm(args, texts, Path(tmp))
    t = ray_res["timings"]
    run_s = t["embed_files_ray_s"]
    embed_only = t["actor_embed_s (mean per actor)"]
    n = len(texts)
    result = {
        "model": args.model,
        "dtype": dtype,
        "passages": n,
        "chunk_tokens": args.chunk_tokens,
        "mean_tokens": float(np.mean([len(i) for i in ids])),
        "group": args.group,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "actors": args.actors,
        "threads_per_actor": args.threads_per_actor,
        "one_process": {"load_s": load_s, "seconds": single_s, "texts_per_s": n / single_s},
        "ray": {
            **ray_res,
            "seconds": run_s,
            "texts_per_s": n / run_s,
            "seconds_incl_init": run_s + t["ray_init_s"],
            "texts_per_s_incl_init": n / (run_s + t["ray_init_s"]),
        },
        "ratio": single_s / run_s,
        "ratio_incl_init": single_s / (run_s + t["ray_init_s"]),
        "ratio_actor_embed_only": single_s / embed_only,
        **agreement(ray_vecs, single_vecs),  # max_abs_diff, min_cosine
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    write_result(args.out, result, markdown=markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
