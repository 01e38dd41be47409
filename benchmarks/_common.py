"""What the benchmarks share: timing, result files, the data they read, a few small measures.

* timing: :func:`best_of` (warm-up, runs interleaved over rounds, best round kept);
* results: :func:`write_result` (JSON, optional markdown beside it, and always a ``machine``
  block from :func:`machine`: results from different hosts are not comparable, so each says
  where it was measured), :func:`md_table`, :func:`command_line`;
* data (from ``gemlm.paths.data_dir()``, or ``data`` when given): STS-B test sentences
  (:func:`stsb_sentences`, :func:`text_pool`), SQuAD v1.1 dev (:func:`squad_dev`,
  :func:`load_squad`), WikiExtractor text (:func:`wiki_texts`);
* training steps: :func:`collate_batches`, :func:`train_steps`;
* :func:`agreement` of two sets of vectors, :func:`memory_mb` of a process.

Importing this module loads neither torch nor transformers: a load generator
(``serve_load``) and the vector-store benchmark run without them. The few functions that need
them import them when called.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from gemlm.paths import data_dir

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# ------------------------------------------------------------------ another revision, side by side
@contextmanager
def baseline_tree(revision: str) -> Iterator[Path]:
    """``revision`` checked out in a temporary detached worktree, removed on the way out."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), revision], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           capture_output=True)  # fmt: skip


def tree_env(tree: Path) -> dict[str, str]:
    """The environment of a process that must import ``gemlm`` from ``tree``."""
    return {**os.environ, "PYTHONPATH": str(tree), "GEMLM_DATA_DIR": str(data_dir().resolve())}


# the report suite's embedding tasks, in the order result tables show them
REPORT_TASKS = ("STSBenchmark", "Banking77", "Emotion", "SciFact", "SQuADRetrieval")
STSB_TEST = "stsbenchmark/stsb-en-test.csv"
SQUAD_DEV = "squad_v1.1/dev-v1.1.json"
WIKI = "wikipedia_en_wikiextractor"
# CPU features that decide how fast (and in which dtype) a CPU runs the matmuls
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")

K = TypeVar("K", bound=Hashable)


# ---------------------------------------------------------------------------------- timing
def seconds_line(name: object, seconds: float) -> str:
    """The default progress line of :func:`best_of`.

    >>> seconds_line("encode", 1.5)
    'encode                          1.50 s'
    """
    return f"{name!s:28s} {seconds:7.2f} s"


def best_of(
    runs: Mapping[K, Callable[[], Any]],
    rounds: int,
    *,
    warmup: bool = True,
    self_timed: bool = False,
    show: Callable[[K, float], str] | None = seconds_line,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[K, float]:
    """Best (lowest) seconds per named run over ``rounds``, the runs interleaved in each round
    so that a noisy machine's drift hits all of them alike.

    ``warmup`` calls every run once first, untimed. Each run is timed around its call, unless
    ``self_timed``: then it returns its own seconds (to leave its set-up out). ``show`` formats
    the line printed after each timed run (``round r: <line>``); None prints nothing.

    >>> ticks = iter(range(100))
    >>> best_of({"a": lambda: None}, 2, show=None, clock=lambda: next(ticks))
    {'a': 1}
    """
    if warmup:
        for run in runs.values():
            run()
    best: dict[K, float] = {}
    for r in range(rounds):
        for name, run in runs.items():
            if self_timed:
                seconds = float(run())
            else:
                start = clock()
                run()
                seconds = clock() - start
            best[name] = min(best.get(name, math.inf), seconds)
            if show is not None:
                print(f"round {r}: {show(name, seconds)}", flush=True)
    return best


# --------------------------------------------------------------------------------- results
def cpu_facts(cpuinfo: str) -> dict[str, Any]:
    """CPU model and the matmul-relevant flags, from the text of ``/proc/cpuinfo``.

    >>> cpu_facts("model name\\t: Xeon\\nflags\\t\\t: fpu avx2 avx512f avx512_bf16 amx_bf16\\n")
    {'cpu': 'Xeon', 'cpu_flags': ['avx2', 'avx512f', 'avx512_bf16', 'amx_bf16']}
    >>> cpu_facts("")["cpu_flags"]
    []
    """
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {
        "cpu": fields.get("model name") or platform.processor() or platform.machine(),
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine(with_torch: bool | None = None) -> dict[str, Any]:
    """The host a result comes from: CPU model and flags, cores, memory, platform, Python; with
    torch (``with_torch``; None: if the benchmark has imported it) its version, its threads
    and ``auto_dtype``, what ``dtype="auto"`` resolves to here (bf16 only where the CPU has
    native bf16: the same command runs in another dtype on another host).

    >>> sorted(machine(with_torch=False))
    ['cpu', 'cpu_flags', 'cpus', 'memory_gib', 'platform', 'python']
    """
    meminfo = _read("/proc/meminfo").split()
    mem_kib = int(meminfo[meminfo.index("MemTotal:") + 1]) if "MemTotal:" in meminfo else 0
    facts: dict[str, Any] = {
        **cpu_facts(_read("/proc/cpuinfo")),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1) or None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if with_torch or (with_torch is None and "torch" in sys.modules):
        import torch

        from gemlm.loading import default_dtype

        facts["torch"] = torch.__version__
        facts["torch_threads"] = torch.get_num_threads()
        facts["auto_dtype"] = str(default_dtype()).removeprefix("torch.")
    return facts


def write_result(
    path: str | os.PathLike[str],
    result: Mapping[str, Any],
    *,
    markdown: str | None = None,
    indent: int = 2,
    with_torch: bool | None = None,
) -> dict[str, Any]:
    """Write ``result`` as JSON at ``path`` (its folder made), with a ``machine`` block from
    :func:`machine` unless it has one, and ``markdown`` (if given) beside it as ``.md``.
    Returns what was written.
    """
    full = dict(result)
    full.setdefault("machine", machine(with_torch))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(full, indent=indent) + "\n")
    if markdown is not None:
        path.with_suffix(".md").write_text(markdown)
    return full


def md_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> list[str]:
    """A markdown table's lines: the first column left-aligned, the others right-aligned.

    >>> print("\\n".join(md_table(["", "score"], [["a", 1.5], ["b", ""]])))
    | | score |
    |---|---:|
    | a | 1.5 |
    | b | |
    """

    def line(cells: Sequence[object]) -> str:
        return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"

    return [line(header), "|---|" + "---:|" * (len(header) - 1), *map(line, rows)]


def command_line() -> str:
    """The command that started this process, as it can be run again (``python -m ...``)."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    head = ["python", "-m", spec.name] if spec is not None else ["python", sys.argv[0]]
    return shlex.join([*head, *sys.argv[1:]])


# ------------------------------------------------------------------------------------ data
def stsb_rows(data: str | os.PathLike[str] | None = None) -> list[list[str]]:
    """The STS-B test CSV's rows: sentence 1, sentence 2, score."""
    with open(data_dir(data) / STSB_TEST, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def stsb_sentences(n: int | None = None, data: str | os.PathLike[str] | None = None) -> list[str]:
    """The first ``n`` distinct STS-B test sentences (both columns, in file order)."""
    return list(dict.fromkeys(s for row in stsb_rows(data) for s in row[:2]))[:n]


def text_pool(n: int, data: str | os.PathLike[str] | None = None) -> list[str]:
    """``n`` texts: distinct STS-B test sentences (real lengths), topped up with seeded
    synthetic ones when the data is missing or short."""
    try:
        texts = stsb_sentences(data=data)
    except OSError:
        texts = []
    if len(texts) < n:
        words = "the cat sat on a mat while stocks fell and paris is the capital of france".split()
        rng = np.random.default_rng(0)
        texts += [
            " ".join(rng.choice(words, size=int(rng.integers(5, 25))))
            for _ in range(n - len(texts))
        ]
    return texts[:n]


def squad_dev(data: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The SQuAD v1.1 dev JSON (``{"data": [article, ...], "version": ...}``)."""
    return json.loads((data_dir(data) / SQUAD_DEV).read_text(encoding="utf-8"))


def load_squad(
    paragraphs: int | None, data: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The SQuAD dev JSON cut to its first ``paragraphs`` (None: all), and its questions, each
    with its paragraph's doc id ``"<title>#<index in the article>"``, title and text."""
    squad = squad_dev(data)
    kept, questions, n = [], [], 0
    for article in squad["data"]:
        paras = []
        for i, para in enumerate(article["paragraphs"]):
            if paragraphs is not None and n >= paragraphs:
                break
            paras.append(para)
            n += 1
            for qa in para["qas"]:
                questions.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"],
                        "answers": [a["text"] for a in qa["answers"]],
                        "doc_id": f"{article['title']}#{i}",
                        "title": article["title"],
                        "context": para["context"],  # the gold passage (rag_squad's "gold")
                    }
                )
        if paras:
            kept.append({"title": article["title"], "paragraphs": paras})
    return {"data": kept, "version": squad.get("version", "1.1")}, questions


def squad_paragraphs(n: int | None, data: str | os.PathLike[str] | None = None) -> list[str]:
    """The texts of the first ``n`` SQuAD dev paragraphs (None: all), in file order."""
    squad, _ = load_squad(n, data)
    return [p["context"] for a in squad["data"] for p in a["paragraphs"]]


def wiki_texts(part: str = "AA/wiki_00", data: str | os.PathLike[str] | None = None) -> Any:
    """One WikiExtractor file's paragraphs as a ``datasets.Dataset`` (``gemlm.corpus``)."""
    from gemlm.corpus import load_texts  # datasets: loaded only by the training benchmarks

    return load_texts(data_dir(data) / WIKI / part)


# -------------------------------------------------------------------------------- training
def collate_batches(
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]], rows: Sequence[Any], size: int
) -> list[dict[str, Any]]:
    """``rows`` of token ids cut into batches of ``size``, each through ``collate``.

    >>> collate_batches(len, [[1], [2], [3]], 2)
    [2, 1]
    """
    return [
        collate([{"input_ids": r} for r in rows[i : i + size]]) for i in range(0, len(rows), size)
    ]


def train_steps(module: Any, batches: Iterable[dict[str, Any]], optimizer: Any) -> None:
    """One optimizer step per batch, the forward under bf16 autocast (as the recipes train)."""
    import torch

    for batch in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module(**batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


# ---------------------------------------------------------------------------------- others
def rates(seconds: Mapping[K, float], texts: int, tokens: int) -> dict[K, dict[str, float]]:
    """Per named run: its seconds and the texts/s and tokens/s they make.

    >>> rates({"a": 2.0}, texts=10, tokens=100)
    {'a': {'seconds': 2.0, 'texts_per_s': 5.0, 'tokens_per_s': 50.0}}
    """
    return {
        name: {
            "seconds": round(s, 3),
            "texts_per_s": round(texts / s, 1),
            "tokens_per_s": round(tokens / s, 1),
        }
        for name, s in seconds.items()
    }


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Largest absolute difference and smallest row cosine between two (N, D) arrays.

    >>> agreement(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    {'max_abs_diff': 1.0, 'min_cosine': 0.0}
    """
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"max_abs_diff": float(np.abs(a - b).max()), "min_cosine": float(cos.min())}


def memory_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident (``VmRSS``) and peak resident (``VmHWM``) memory of a process, in MB (Linux)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return {"rss_mb": out["VmRSS"], "peak_rss_mb": out["VmHWM"]}


def stage_runtime(log: str | os.PathLike[str]) -> tuple[float, int]:
    """(seconds, optimizer steps) of one finished training stage: the Trainer's
    ``train_runtime`` in its ``log_history.json`` (no evaluation counted)."""
    rows = json.loads(Path(log).read_text())
    end = next(r for r in rows if "train_runtime" in r)
    return float(end["train_runtime"]), int(end["step"])
