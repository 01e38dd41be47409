"""Bulk embedding on Ray (gemlm/distributed/): the vectors of ``encode``, resumable output
folders, the CLI's ``--engine ray``, the RAG indexer, and a real two-node cluster by address.

Ray runs locally (``num_cpus=2``, no dashboard, no usage statistics); workers load the tiny
model from a folder, never from a pickle. The cluster test starts its own ``ray start --block``
processes on loopback and stops exactly those.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gemlm import distributed as dist
from gemlm.model import GEMModel
from gemlm.rag.indexing import index_paths
from gemlm.rag.store import RagStore

ray = pytest.importorskip("ray")

LINES = [
    "the cat sat on the mat",
    "",
    "a quick brown fox jumps over the lazy dog",
    "   ",
    "stocks fell sharply today while bonds rose",
    "the cat sat on the mat",  # repeated: one id, written once
    "paris is the capital of france",
    "the weather is sunny with a chance of rain tomorrow and the day after it",
    "language models can embed text",
]
ROWS = [
    {"id": "r1", "text": "berlin is the capital of germany"},
    {"id": 7, "text": "the dog sat on the rug"},
    {"text": "bonds rose while stocks fell"},
    {"text": "paris is the capital of france"},  # same text as a .txt line: same id
    {"id": "r2", "text": "generate text and embed text with one model", "extra": [1, 2]},
]


def filler(n: int, start: int = 0) -> list[str]:
    """Distinct texts, enough that Ray cuts each file into several blocks."""
    words = ["cat", "dog", "fox", "mat", "rug", "rain", "bonds", "stocks", "paris", "text"]
    return [
        f"the {words[i % 10]} and the {words[i // 10 % 10]} number {i}"
        for i in range(start, start + n)
    ]


def write_inputs(folder: Path, n: int = 0) -> tuple[list[Path], dict[str, str]]:
    """A .txt and a .jsonl input (plus ``n`` filler texts in each), and the {id: text} an
    embedding run must produce."""
    folder.mkdir(parents=True, exist_ok=True)
    txt, jl = folder / "lines.txt", folder / "rows.jsonl"
    lines, rows = LINES + filler(n), ROWS + [{"text": t} for t in filler(n, n)]
    txt.write_text("\n".join(lines) + "\n")
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    expected = {dist.text_id(t): t for t in lines if t.strip()}
    for r in rows:
        expected[str(r["id"]) if "id" in r else dist.text_id(r["text"])] = r["text"]
    return [txt, jl], expected


def stored(out: Path) -> tuple[list[str], dict[str, str], dict[str, np.ndarray]]:
    """Every id in the folder's parts (duplicates kept), and text and vector by id."""
    table = dist.read_embeddings(out)
    ids = table.column("id").to_pylist()
    vectors = dist.vector_matrix(table)
    texts = dict(zip(ids, table.column("text").to_pylist(), strict=True))
    return ids, texts, dict(zip(ids, vectors, strict=True))


def assert_like_encode(gem: GEMModel, expected: dict[str, str], out: Path) -> None:
    ids, texts, vectors = stored(out)
    assert sorted(ids) == sorted(expected)  # every id, each exactly once
    assert texts == expected
    want = gem.encode(list(expected.values()))
    for rid, w in zip(expected, want, strict=True):
        np.testing.assert_allclose(vectors[rid], w, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def gem_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model saved as a gemlm folder with document/query prompts (workers load it)."""
    gem = GEMModel.from_pretrained(str(tiny_llama_dir), dtype="float32")
    gem.config.prompts = {"document": "passage: ", "query": "question: "}
    return gem.save_pretrained(tmp_path_factory.mktemp("gem") / "model")


@pytest.fixture(scope="module")
def gem(gem_dir: Path) -> GEMModel:
    return GEMModel.from_pretrained(str(gem_dir), dtype="float32")


@pytest.fixture(scope="module")
def ray_temp() -> Iterator[str]:
    """Ray's session folder for this module (short: Ray's socket paths are limited)."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    yield temp
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def local_ray(ray_temp: str, monkeypatch: pytest.MonkeyPatch):
    """One local 2-CPU Ray for the module (restarted if the cluster test shut it down)."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # loopback only; no token in ~/.ray
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=ray_temp)
    return ray


RUN = dict(dtype="float32", actors=2, group_size=4, part_rows=4)


def test_ray_vectors_equal_encode(local_ray, gem_dir: Path, gem: GEMModel, tmp_path: Path):
    files, expected = write_inputs(tmp_path / "in", n=100)
    report = dist.embed_files_ray(str(gem_dir), files, tmp_path / "out", **RUN)
    assert_like_encode(gem, expected, tmp_path / "out")
    assert (report.written, report.already_present, report.files) == (len(expected), 0, 2)
    assert report.actors == 2 and report.nodes == 1
    assert all(n.startswith("part-") for n in report.parts)


@pytest.mark.slow  # two Ray runs: ~50 s on 2 busy cores
def test_interrupted_run_completes_without_duplicates(
    local_ray, gem_dir: Path, gem: GEMModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    files, expected = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    real, calls = dist.parts._dump_table, []

    def killed_on_second_part(table, fh) -> None:
        calls.append(1)
        if len(calls) == 2:  # the process dies half-way through writing its second part
            fh.write(b"PAR1 half of a part")
            raise KeyboardInterrupt
        real(table, fh)

    monkeypatch.setattr(dist.parts, "_dump_table", killed_on_second_part)
    with pytest.raises(KeyboardInterrupt):
        dist.embed_files_ray(str(gem_dir), files, out, **RUN)
    assert len(list(out.glob("part-*.parquet"))) == 1
    assert len(list(out.glob(".part-*.parquet.tmp"))) == 1  # the half-written part
    first, _, _ = stored(out)  # readers skip the temporary file

    monkeypatch.setattr(dist.parts, "_dump_table", real)
    report = dist.embed_files_ray(str(gem_dir), files, out, **RUN)
    assert report.temp_removed == 1 and not list(out.glob(".part-*"))
    assert report.already_present == len(first) >= 1
    assert report.written == len(expected) - len(first)
    assert_like_encode(gem, expected, out)


def test_text_ids_share_the_passage_namespace() -> None:
    from gemlm.rag.documents import ID_NAMESPACE

    assert dist.ID_NAMESPACE == ID_NAMESPACE
    assert dist.text_id("a") == dist.text_id("a") != dist.text_id("a ")


def test_a_folder_holds_one_model(gem_dir: Path, tmp_path: Path) -> None:
    files, _ = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    dist.check_manifest(out, {"model": "another-model", "prompt_name": None})
    dist.write_part(out, "part-x-00000", dist.embeddings_table(["i"], ["a"], np.zeros((1, 4))))
    with pytest.raises(dist.EngineError, match="use another --out"):
        dist.embed_files_ray(str(gem_dir), files, out, **RUN)


def test_bad_jsonl_line_is_a_clear_error(local_ray, gem_dir: Path, tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"title": "no text here"}\n')
    with pytest.raises(dist.EngineError, match=r"bad.jsonl: a row has no string 'text' field"):
        dist.embed_files_ray(str(gem_dir), [bad], tmp_path / "out", **{**RUN, "actors": 1})


def run(*args: object):
    from gemlm.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_engine_ray(local_ray, gem_dir: Path, gem: GEMModel, tmp_path: Path) -> None:
    files, expected = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    opts = ["--engine", "ray", "--out", out, "--model", gem_dir, "--dtype", "float32"]
    r = run(
        "embed", files[0], "--file", files[1], *opts, "--actors", "1", "--threads-per-actor", "2"
    )
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert f"wrote {len(expected)} embeddings" in said and "0 already there" in said
    assert_like_encode(gem, expected, out)


def test_cli_engine_ray_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = tmp_path / "a.txt"
    text.write_text("one text\n")

    def error(*args: object) -> str:
        r = run("embed", *args)
        assert r.exit_code == 2, r.output
        return " ".join(r.output.split())

    assert "no inputs" in error("--engine", "ray", "--out", tmp_path / "o")
    assert "no such file" in error("--engine", "ray", tmp_path / "nope.txt", "--out", tmp_path)
    assert "must be a folder" in error("--engine", "ray", text, "--out", text)
    assert "needs --out DIR" in error("--engine", "ray", text)
    assert "need --engine ray" in error("a text", "--actors", "2")
    assert "unknown --engine" in error("a text", "--engine", "spark")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    assert 'pip install "gemlm[ray]"' in error("--engine", "ray", text, "--out", tmp_path / "o")


def make_docs(folder: Path) -> Path:
    """A .txt long enough to chunk and a SQuAD-style .json (one passage per paragraph)."""
    folder.mkdir(parents=True)
    (folder / "long.txt").write_text(" ".join(t for t in LINES if t.strip()) * 3)
    squad = {"data": [{"title": "T", "paragraphs": [{"context": r["text"]} for r in ROWS]}]}
    (folder / "squad.json").write_text(json.dumps(squad))
    return folder


def test_index_paths_ray_matches_index_paths(
    local_ray, gem_dir: Path, gem: GEMModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    docs = make_docs(tmp_path / "docs")
    seen: dict[str, dict[str, np.ndarray]] = {"local": {}, "ray": {}}
    kw = dict(model_id="tiny", chunk_tokens=16, overlap=2, batch_size=2)
    ray_kw = dict(actors=2, group_size=4, upsert_batch=3, dtype="float32", **kw)
    with RagStore(tmp_path / "q") as store:
        real = store.upsert

        def spy(collection, ids, vectors, payloads) -> None:
            seen[collection].update(zip(ids, np.asarray(vectors, np.float32), strict=True))
            real(collection, ids, vectors, payloads)

        monkeypatch.setattr(store, "upsert", spy)
        local = index_paths(gem, store, "local", [docs], **kw)
        report = dist.index_paths_ray(str(gem_dir), store, "ray", [docs], **ray_kw)
        assert report.as_dict() == local.as_dict() and report.added == report.passages > 6
        assert store.count("ray") == store.count("local") == report.passages
        assert seen["ray"].keys() == seen["local"].keys()
        for pid, vector in seen["local"].items():
            np.testing.assert_allclose(seen["ray"][pid], vector, atol=1e-5, rtol=0)
        again = dist.index_paths_ray(str(gem_dir), store, "ray", [docs], model=gem, **ray_kw)
        assert (again.added, again.already_present) == (0, report.passages)
        assert store.count("ray") == report.passages


def test_cli_rag_index_engine_ray(
    local_ray, gem_dir: Path, gem: GEMModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    docs = make_docs(tmp_path / "docs")
    with RagStore(tmp_path / "local") as store:
        local = index_paths(gem, store, "kb", [docs], model_id=str(gem_dir), chunk_tokens=16)

    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("--engine ray embedded in the CLI's process")

    monkeypatch.setattr("gemlm.rag.indexing.index_paths", not_here)
    opts = ["--collection", "kb", "--model", gem_dir, "--dtype", "float32", "--chunk-tokens", 16]
    opts += ["--qdrant-path", tmp_path / "q", "--engine", "ray", "--actors", 2]
    first = run("rag", "index", docs, *opts)
    assert first.exit_code == 0, first.output
    assert f"{local.passages} passages ({local.passages} added" in " ".join(first.output.split())
    again = run("rag", "index", docs, *opts)
    assert again.exit_code == 0, again.output
    said = " ".join(again.output.split())
    assert f"(0 added, {local.passages} already present" in said
    with RagStore(tmp_path / "q") as store:
        assert store.count("kb") == local.passages


# ---------------------------------------------------------------------- a real cluster
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_ports() -> list[str]:
    """Every port a node binds, chosen free: two nodes share this machine."""
    names = (
        "node-manager-port",
        "object-manager-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "runtime-env-agent-port",
        "metrics-export-port",
    )
    return [f"--{name}={free_port()}" for name in names]


def our_processes(marker: str) -> list[int]:
    """Pids whose command line names our cluster's temp dir (only processes we started)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_text(errors="ignore"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A head and a worker node (1 CPU each) on loopback, started with `ray start --block`.

    Stopped by signalling the process groups of those two commands (each started in its own
    session), then any process still naming this cluster's temp dir: never `ray stop`, which
    would stop every Ray on the machine.
    """
    ray.shutdown()  # the module's local Ray, if a test before started it
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short, as in ray_temp
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # loopback only; no token in ~/.ray
    env = dict(os.environ)
    bin_ray = str(Path(sys.executable).parent / "ray")
    common = ["--block", "--num-cpus=1", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}"]
    port = free_port()
    address = f"127.0.0.1:{port}"
    head_args = ["--head", f"--port={port}", "--include-dashboard=false"]
    head_args += [f"--ray-client-server-port={free_port()}", f"--dashboard-port={free_port()}"]
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        for args in (head_args, [f"--address={address}"]):
            logs.append(open(Path(temp) / f"start-{len(procs)}.log", "w"))
            procs.append(
                subprocess.Popen(
                    [bin_ray, "start", *common, *node_ports(), *args],
                    stdout=logs[-1],
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )
            wait_for_nodes(address, len(procs), procs)
        yield address
    finally:
        ray.shutdown()
        for p in reversed(procs):  # SIGTERM (Ray's stop signal), then SIGKILL what is left
            signal_group(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=3)  # `ray start --block` itself does not exit on SIGTERM
            except subprocess.TimeoutExpired:
                signal_group(p.pid, signal.SIGKILL)
                p.wait()
        for pid in our_processes(temp):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for log in logs:
            log.close()
        shutil.rmtree(temp, ignore_errors=True)


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def wait_for_nodes(address: str, n: int, procs: list[subprocess.Popen]) -> None:
    """Until the cluster at ``address`` has ``n`` live nodes (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("`ray start` exited: see start-*.log in the cluster temp dir")
        try:
            if not ray.is_initialized():
                ray.init(address=address, log_to_driver=False)
            if sum(node["Alive"] for node in ray.nodes()) >= n:
                ray.shutdown()
                return
        except Exception:  # not up yet: Ray raises several kinds while the GCS starts
            ray.shutdown()
        time.sleep(1)
    raise TimeoutError(f"the Ray cluster at {address} did not reach {n} nodes")


@pytest.mark.slow  # starts a 2-node cluster: ~50 s
def test_cluster_by_address(cluster: str, gem_dir: Path, gem: GEMModel, tmp_path: Path) -> None:
    files, expected = write_inputs(tmp_path / "in", n=100)
    report = dist.embed_files_ray(
        str(gem_dir), files, tmp_path / "out", address=cluster, **{**RUN, "actors": None}
    )
    assert report.nodes == 2 and report.actors == 2  # 1 CPU per node: one actor on each
    assert_like_encode(gem, expected, tmp_path / "out")
    assert not ray.is_initialized()  # the run disconnected from the cluster it joined
