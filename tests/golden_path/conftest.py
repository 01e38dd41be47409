"""The path a user walks, end to end, for each of the three kinds of model gemlm makes.

- ``plain``: the untrained alias (the tiny local stand-in the other tests use), a GEM token added
  at load;
- ``all``: ``gemlm train`` with LoRA over every position, merged and saved in full;
- ``special_only``: ``gemlm train`` with the gated adapter (the README's recommended recipe), saved
  as a small adapter folder that names its base.

Each trained model is made by the CLI on a tiny recipe and loaded back from its folder. Then, per
kind: the front's attributes; ``gemlm info``; ``gemlm rag index`` of a small file; ``gemlm serve
--rag-collection`` as a real uvicorn process on loopback; the official ``openai`` client's
embeddings (base64 and float) equal to ``encode``; greedy chat equal to the model's own (and, for
``special_only``, token for token the base model's); ``/v1/rag`` answering from the indexed file;
LangChain and LlamaIndex against the same server; SIGTERM stops it. All of it offline: this
process refuses any connection that is not to loopback.

The three servers start together in one package fixture (autouse: they boot while the
in-process tests of ``test_front.py`` run) and are shared by the tests of ``test_server.py``, whose
last test stops them. This conftest holds the guard, the models and the servers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from gemlm.cli import app
from gemlm.model import GEMModel

KINDS = ("plain", "all", "special_only")
COLLECTION = "notes"
NOTE = "paris is the capital of france and berlin is the capital of germany.\n"
TEXTS = ["the cat sat on the mat", "paris is the capital of france", "stocks fell sharply today"]
SENTENCES = [
    "The cat sat on the mat while the dog slept on the rug.",
    "Paris is the capital of France and Berlin is the capital of Germany.",
    "Stocks fell sharply today while bonds rose in early trading.",
    "The weather is sunny with a chance of rain tomorrow afternoon.",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
runner = CliRunner()


# ---------------------------------------------------------------------------- offline guard
def _loopback(address: Any) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths and the like stay on the machine
        return True
    return str(address[0]) in LOOPBACK


@pytest.fixture(scope="package", autouse=True)
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No connection leaves the machine, and no client finds a tokenizer file in a cache."""
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock: socket.socket, address: Any) -> Any:
        if not _loopback(address):
            raise OSError(f"golden path test: no network (tried {address!r})")
        return connect(sock, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and str(host) not in LOOPBACK:
            raise OSError(f"golden path test: no network (tried to resolve {host!r})")
        return getaddrinfo(host, *args, **kwargs)

    empty = tmp_path_factory.mktemp("no-caches")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", guarded_connect)
        mp.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
        for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LANGSMITH_API_KEY"):
            mp.delenv(var, raising=False)
        mp.setenv("TIKTOKEN_CACHE_DIR", str(empty / "tiktoken"))  # cl100k would be a download
        mp.setenv("LANGSMITH_TRACING", "false")
        mp.setenv("LANGCHAIN_TRACING_V2", "false")
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("GEMLM_HOME", str(empty / "gemlm_home"))  # package fixtures run before conftest's
        mp.setenv("NLTK_DATA", str(empty / "nltk"))
        yield


# ---------------------------------------------------------------------------- the models
@pytest.fixture(scope="package")
def work(offline: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("golden")


def recipe(base: Path, corpus: Path, out: Path, scope: str) -> dict[str, Any]:
    """A tiny GEM run: 2 NTP + 2 contrastive steps, at a rate that moves every trained weight."""
    return dict(
        model=str(base),
        output_dir=str(out),
        train_data=str(corpus),
        adapter_scope=scope,
        eval_rows=4,
        ntp_steps=2,
        ntp_batch_size=4,
        ntp_seq_len=40,
        gem_prob=1.0 if scope == "special_only" else 0.5,  # what the gated recipe runs
        min_prefix=4,
        min_suffix=4,
        contrastive_steps=2,
        contrastive_batch_size=4,
        contrastive_max_len=24,
        contrastive_alpha=1.0 if scope == "special_only" else 0.5,
        ntp_lr=5e-2,
        contrastive_lr=5e-2,
        save_steps=2,
        logging_steps=1,
        quick_eval=False,
        bf16=False,
        max_length=64,
    )


@pytest.fixture(scope="package")
def folders(tiny_llama_dir: Path, work: Path) -> dict[str, Path]:
    """kind -> the folder a user points every command at; trained kinds made by `gemlm train`."""
    corpus = work / "train.txt"
    corpus.write_text("\n".join(f"{a} {b}" for a in SENTENCES for b in SENTENCES) + "\n")
    out = {"plain": Path(tiny_llama_dir)}
    for scope in ("all", "special_only"):
        config = work / f"{scope}.yaml"
        config.write_text(yaml.safe_dump(recipe(tiny_llama_dir, corpus, work / scope, scope)))
        r = runner.invoke(app, ["train", "--config", str(config)])
        assert r.exit_code == 0, r.output
        out[scope] = work / scope / "model"
        assert (out[scope] / "gemlm_config.json").is_file()
    return out


@pytest.fixture(scope="package")
def gems(folders: dict[str, Path]) -> dict[str, GEMModel]:
    """Each kind loaded back from its folder, as the server will load it."""
    return {k: GEMModel.from_pretrained(str(f), dtype="float32") for k, f in folders.items()}


@pytest.fixture(scope="package")
def note(work: Path) -> Path:
    path = work / "docs" / "capitals.txt"
    path.parent.mkdir()
    path.write_text(NOTE)
    return path


@pytest.fixture(scope="package")
def stores(folders: dict[str, Path], note: Path, work: Path) -> dict[str, Path]:
    """kind -> a local Qdrant folder holding ``note`` indexed by `gemlm rag index`."""
    out = {}
    for kind, folder in folders.items():
        out[kind] = work / f"qdrant-{kind}"
        args = ["rag", "index", str(note), "--collection", COLLECTION, "--model", str(folder)]
        args += ["--dtype", "float32", "--qdrant-path", str(out[kind])]
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
    return out


# ---------------------------------------------------------------------------- the servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    kind: str
    proc: subprocess.Popen
    port: int
    log: Path
    ready: bool = False

    @property
    def name(self) -> str:
        return f"gem-{self.kind}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 60) -> Served:
        deadline = time.monotonic() + timeout
        while not self.ready:
            assert self.proc.poll() is None, f"gemlm serve exited:\n{self.output()}"
            try:
                self.ready = httpx.get(self.url + "/health", timeout=1).status_code == 200
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"gemlm serve did not come up:\n{self.output()}"
            time.sleep(0.1)
        return self


@pytest.fixture(scope="package", autouse=True)
def servers(
    folders: dict[str, Path], stores: dict[str, Path], work: Path
) -> Iterator[dict[str, Served]]:
    """`gemlm serve --rag-collection` for every kind, started together, stopped at the end.

    Autouse: they boot while the in-process tests run; each test waits for its own."""
    env = {**os.environ, "GEMLM_HOME": str(work / "home")}
    out = {}
    for kind in KINDS:
        port, log = free_port(), work / f"serve-{kind}.log"
        cmd = [sys.executable, "-m", "gemlm.cli", "serve", "--model", str(folders[kind])]
        cmd += ["--dtype", "float32", "--port", str(port), "--model-name", f"gem-{kind}"]
        cmd += ["--rag-collection", COLLECTION, "--qdrant-path", str(stores[kind])]
        with log.open("wb") as sink:
            proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env)
        out[kind] = Served(kind, proc, port, log)
    try:
        yield out
    finally:
        for s in out.values():
            if s.proc.poll() is None:
                s.proc.terminate()
        for s in out.values():
            try:
                s.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def served(servers: dict[str, Served], kind: str) -> Served:
    return servers[kind].wait()
