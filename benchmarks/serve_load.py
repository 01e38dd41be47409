"""Load test of ``gemlm serve``: concurrent embedding + chat clients on loopback, in one run.

1. A subprocess loads the model alone, times offline ``encode`` on the text pool (warm, same
   batch size as the server, best of 2 rounds; repeated after the load phases, fastest kept,
   so a noisy machine does not flatter the ratio) and reports its RSS: the baselines.
2. ``gemlm serve`` starts in a subprocess; ``--clients`` asyncio clients send
   a) embedding requests only (``--texts-per-request`` texts each, base64 as the ``openai`` SDK
      does): texts/s vs offline ``encode`` (target >= 0.9, issue 25);
   b) a mix of embedding and chat requests (``--chat-fraction``; 0 skips this phase): p50/p99
      latency per kind.
   Each phase sends ``--requests`` requests or stops issuing at ``--time-limit`` seconds.
3. Error count over both phases (target 0) and the server's RSS vs the model alone (<= 1.15x).

    python -m benchmarks.serve_load [--model smollm2-135m-instruct] [--requests 1000]
        [--clients 32] [--time-limit 300] [--out benchmarks/results/serve_load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks._common import RESULTS, best_of, memory_mb, text_pool, write_result


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds a process (all its threads) has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident and peak resident memory of a process, in MB, to 0.1."""
    return {k: round(v, 1) for k, v in memory_mb(pid).items()}


def offline(args: argparse.Namespace) -> None:
    """Child process: the model alone. Prints one JSON line."""
    from transformers.utils import logging as hf_logging

    from gemlm.model import GEMModel

    hf_logging.set_verbosity_error()
    gem = GEMModel.from_pretrained(args.model, dtype=args.dtype)
    texts = text_pool(args.pool)
    gem.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    gem.chat("Say hi.", max_new_tokens=4)  # so the baseline holds what generation allocates
    encode = partial(gem.encode, texts, batch_size=args.batch_size)
    seconds = best_of({"encode": encode}, 2, warmup=False, show=None)["encode"]
    print(json.dumps({"texts": len(texts), "seconds": seconds, **rss_mb()}))


def run_offline() -> dict[str, float]:
    """The model-alone baseline in a fresh process (so its RSS is the model's alone)."""
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.serve_load", "--offline-child", *sys.argv[1:]],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(xs: list[float]) -> dict[str, float | None]:
    if not xs:
        return {"p50_ms": None, "p99_ms": None, "count": 0}
    a = np.asarray(xs) * 1000
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p99_ms": round(float(np.percentile(a, 99)), 1),
        "count": len(xs),
    }


async def load_phase(
    url: str, args: argparse.Namespace, texts: list[str], chat_fraction: float
) -> dict[str, object]:
    """``--clients`` workers pull request numbers until ``--requests`` or ``--time-limit``."""
    rng = np.random.default_rng(1)
    kinds = ["chat" if x < chat_fraction else "embed" for x in rng.random(args.requests)]
    latencies: dict[str, list[float]] = {"embed": [], "chat": []}
    errors: list[str] = []
    counter = iter(range(args.requests))
    embedded = 0
    start = time.perf_counter()
    deadline = start + args.time_limit

    async def one(client: httpx.AsyncClient, i: int) -> None:
        nonlocal embedded
        if kinds[i] == "embed":
            k = args.texts_per_request
            batch = [texts[(i * k + j) % len(texts)] for j in range(k)]
            body = {"model": "gem", "input": batch, "encoding_format": "base64"}
            path = "/v1/embeddings"
        else:
            msg = texts[i % len(texts)]
            body = {
                "model": "gem",
                "messages": [{"role": "user", "content": f"Summarize: {msg}"}],
                "max_tokens": args.chat_max_tokens,
                "temperature": 0,
            }
            path = "/v1/chat/completions"
        t = time.perf_counter()
        try:
            r = await client.post(path, json=body)
            ok = r.status_code == 200
            if ok and kinds[i] == "embed":
                ok = len(r.json()["data"]) == len(batch)
                embedded += len(batch)
            if not ok:
                errors.append(f"{path} {r.status_code} {r.text[:200]}")
        except Exception as exc:  # counted, never fatal
            errors.append(f"{path} {type(exc).__name__}: {exc}")
            return
        latencies[kinds[i]].append(time.perf_counter() - t)

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            await one(client, i)

    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600) as client:
        await asyncio.gather(*[client_loop(client) for _ in range(args.clients)])
    seconds = time.perf_counter() - start
    done = sum(len(v) for v in latencies.values()) + len(errors)
    return {
        "requests": done,
        "seconds": round(seconds, 2),
        "requests_per_s": round(done / seconds, 2),
        "texts_embedded": embedded,
        "texts_per_s": round(embedded / seconds, 2),
        "errors": len(errors),
        "error_samples": errors[:5],
        "latency_all": percentiles(latencies["embed"] + latencies["chat"]),
        "latency_embed": percentiles(latencies["embed"]),
        "latency_chat": percentiles(latencies["chat"]),
    }


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "gemlm.cli", "serve", "--model", args.model]
    cmd += ["--dtype", args.dtype, "--port", str(port), "--model-name", "gem"]
    cmd += ["--max-batch", str(args.max_batch), "--log-level", "warning"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise TimeoutError("server did not become healthy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--requests", type=int, default=1000, help="per phase")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--time-limit", type=float, default=300, help="seconds per phase")
    ap.add_argument("--texts-per-request", type=int, default=4)
    ap.add_argument("--chat-fraction", type=float, default=0.2)
    ap.add_argument("--chat-max-tokens", type=int, default=16)
    ap.add_argument("--pool", type=int, default=1024, help="distinct texts")
    ap.add_argument("--batch-size", type=int, default=32, help="offline encode batch size")
    ap.add_argument("--max-batch", type=int, default=64, help="server micro-batch")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve_load.json")
    ap.add_argument("--offline-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.offline_child:
        return offline(args)

    texts = text_pool(args.pool)
    base = run_offline()
    print(
        f"offline encode: {base['texts'] / base['seconds']:.1f} texts/s; model alone "
        f"{base['rss_mb']} MB RSS"
    )

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(args, port)
    try:
        wait_healthy(url, proc)
        warm = argparse.Namespace(**{**vars(args), "requests": 2 * args.clients})
        asyncio.run(load_phase(url, warm, texts, 0.1))  # warm-up, not reported
        cpu0 = cpu_seconds(), cpu_seconds(proc.pid)
        embed_only = asyncio.run(load_phase(url, args, texts, 0.0))
        client_cpu, server_cpu = cpu_seconds() - cpu0[0], cpu_seconds(proc.pid) - cpu0[1]
        embed_only["cpu_seconds"] = {  # both share the 2 cores; offline encode has them alone
            "client": round(client_cpu, 2),
            "server": round(server_cpu, 2),
            "client_share": round(client_cpu / (client_cpu + server_cpu), 3),
        }
        print(f"embed-only: {embed_only['texts_per_s']} texts/s, {embed_only['errors']} errors")
        mixed: dict[str, Any] = {"requests": 0, "errors": 0, "latency_all": percentiles([])}
        if args.chat_fraction:  # 0: skipped (it would be the embed-only phase again)
            mixed = asyncio.run(load_phase(url, args, texts, args.chat_fraction))
            print(f"mixed: {mixed['requests_per_s']} req/s, {mixed['errors']} errors")
        server_mem = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    again = run_offline()  # the baseline again after the load: the faster run counts
    if again["seconds"] < base["seconds"]:
        base = {**base, "seconds": again["seconds"]}
    offline_tps = base["texts"] / base["seconds"]

    ratio = embed_only["texts_per_s"] / offline_tps  # type: ignore[operator]
    errors = embed_only["errors"] + mixed["errors"]  # type: ignore[operator]
    total = embed_only["requests"] + mixed["requests"]  # type: ignore[operator]
    result = {
        "model": args.model,
        "dtype": args.dtype,
        "clients": args.clients,
        "texts_per_request": args.texts_per_request,
        "chat_fraction": args.chat_fraction,
        "chat_max_tokens": args.chat_max_tokens,
        "server_max_batch": args.max_batch,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "offline": {**base, "texts_per_s": round(offline_tps, 2)},
        "embed_only": embed_only,
        "mixed": mixed,
        "server_memory": server_mem,
        "summary": {
            "throughput_vs_offline_encode": round(ratio, 3),
            "target_throughput_ratio": 0.9,
            "requests_total": total,
            "errors_total": errors,
            "rss_ratio": round(server_mem["rss_mb"] / base["rss_mb"], 3),
            "peak_rss_ratio": round(server_mem["peak_rss_mb"] / base["peak_rss_mb"], 3),
            "target_rss_ratio": 1.15,
            "mixed_p50_ms": mixed["latency_all"]["p50_ms"],  # type: ignore[index]
            "mixed_p99_ms": mixed["latency_all"]["p99_ms"],  # type: ignore[index]
        },
    }
    write_result(args.out, result, with_torch=True)  # torch: the server's and offline child's
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
