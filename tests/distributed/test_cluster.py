"""A real two-node Ray cluster on loopback, reached by address.

The test starts its own ``ray start --block`` processes on loopback and stops exactly those.
"""

from __future__ import annotations

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

import pytest

from gemlm import distributed as dist
from gemlm.model import GEMModel

from .conftest import RUN, assert_like_encode, ray, write_inputs


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
    ray.shutdown()  # the package's local Ray, if a test before started it
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
