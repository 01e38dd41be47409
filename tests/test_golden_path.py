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

The three servers start together in one module fixture (autouse: they boot while the in-process
tests run) and are shared by the tests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from gemlm.cli import app
from gemlm.model import GEMModel

KINDS = ("plain", "all", "special_only")
COLLECTION = "notes"
NOTE = "paris is the capital of france and berlin is the capital of germany.\n"
TEXTS = ["the cat sat on the mat", "paris is the capital of france", "stocks fell sharply today"]
CHAT = [{"role": "user", "content": "the weather is sunny"}]
NEW_TOKENS = 8
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


@pytest.fixture(scope="module", autouse=True)
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
        mp.setenv("GEMLM_HOME", str(empty / "gemlm_home"))  # module fixtures run before conftest's
        mp.setenv("NLTK_DATA", str(empty / "nltk"))
        yield


# ---------------------------------------------------------------------------- the models
@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def gems(folders: dict[str, Path]) -> dict[str, GEMModel]:
    """Each kind loaded back from its folder, as the server will load it."""
    return {k: GEMModel.from_pretrained(str(f), dtype="float32") for k, f in folders.items()}


@pytest.fixture(scope="module")
def note(work: Path) -> Path:
    path = work / "docs" / "capitals.txt"
    path.parent.mkdir()
    path.write_text(NOTE)
    return path


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module", autouse=True)
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


def openai_client(s: Served) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=60)


# ---------------------------------------------------------------------------- the guard
def test_nothing_leaves_the_machine() -> None:
    """What makes the client tests below offline tests: only loopback connects."""
    with socket.socket() as s, pytest.raises(OSError, match="no network"):
        s.connect(("198.51.100.7", 443))  # TEST-NET-2
    with pytest.raises(OSError, match="no network"):
        socket.getaddrinfo("api.openai.com", 443)


# ---------------------------------------------------------------------------- the front
EXPECTED_SCOPE = {"plain": "all", "all": "all", "special_only": "special_only"}


def test_every_front_attribute_works_on_every_kind(gems, folders, kind, tokenizer) -> None:
    gem = gems[kind]
    properties = [n for n, v in vars(GEMModel).items() if isinstance(v, property)]
    assert {"vocab_size", "context_length", "embedding_dim", "special_ids"} <= set(properties)
    values = {n: getattr(gem, n) for n in properties}  # none may raise
    vocab = len(tokenizer) + 1  # the tiny tokenizer + one GEM token
    assert values["vocab_size"] == len(gem.tokenizer) == vocab
    assert values["context_length"] == 256  # the tiny Llama's max_position_embeddings
    assert values["embedding_dim"] == gem.get_embedding_dimension() == 32
    assert gem.get_sentence_embedding_dimension() == 32
    assert values["special_ids"] == [vocab - 1]
    assert values["pad_id"] == gem.tokenizer.pad_token_id
    assert str(values["device"]) == "cpu" and str(values["dtype"]) == "torch.float32"
    assert gem.prompt() == gem.prompt("query") == gem.prompt("document") == ""
    assert gem.text_room() == gem.config.max_length - 1 - 1  # BOS room, one special token
    ids, cut = gem.tokenize_for_embedding(["the cat sat"])
    assert cut == 0 and ids[0][-1] == vocab - 1
    assert gem.encode("the cat sat").shape == (32,)
    info = gem.info()
    want = {
        "architecture": "LlamaForCausalLM",  # the model's, not a peft wrapper's
        "hidden_size": 32,
        "layers": 2,
        "embedding_dimension": 32,
        "special_tokens": {"<|gem_0|>": vocab - 1},
        "readout": "mean",
        "adapter_scope": EXPECTED_SCOPE[kind],
        "max_length": 256 if kind == "plain" else 64,  # the plain one: clipped to the context
        "prompts": {},
        "dtype": "float32",
        "device": "cpu",
    }
    assert {k: info.get(k) for k in want} == want  # other keys may come
    assert info["base_model"] == str(folders["plain"])  # what each was made from
    assert info["parameters"] >= sum(p.numel() for p in gems["plain"].model.parameters())


def test_export_is_exact_or_refused_by_kind(gems, kind, tmp_path) -> None:
    """The sentence-transformers export: the same vectors where the kind has one (merged
    weights, last-token pooling), a clear refusal where it cannot (a gated LoRA)."""
    from gemlm.export import export_sentence_transformers

    gem = gems[kind]
    if not gem.config.adapter_scope.exportable:
        with pytest.raises(ValueError, match="no sentence-transformers export"):
            export_sentence_transformers(gem, tmp_path / "st")
        assert not (tmp_path / "st").exists()
        return
    from sentence_transformers import SentenceTransformer

    out = export_sentence_transformers(gem, tmp_path / "st")
    st = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(st.encode(SENTENCES[:3]), gem.encode(SENTENCES[:3]), atol=1e-4)


def test_gemlm_info_shows_every_kind(folders, kind) -> None:
    r = runner.invoke(app, ["info", "--model", str(folders[kind]), "--dtype", "float32"])
    assert r.exit_code == 0, r.output
    assert "LlamaForCausalLM" in r.output and EXPECTED_SCOPE[kind] in r.output


def test_gemlm_embed_cli_equals_encode(folders, gems, kind, tmp_path) -> None:
    out = tmp_path / "e.npy"
    args = ["embed", *TEXTS[:2], "--out", str(out), "--model", str(folders[kind])]
    r = runner.invoke(app, [*args, "--dtype", "float32"])
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(np.load(out), gems[kind].encode(TEXTS[:2]), atol=1e-5)


def test_gemlm_rag_cli_index_list_ask_delete(folders, note, kind, tmp_path) -> None:
    """The RAG commands on their own store (the servers hold theirs open)."""
    store = ["--qdrant-path", str(tmp_path / "q")]
    r = runner.invoke(app, ["rag", "index", str(note), "-c", "kb", "-m", str(folders[kind]),
                            "--dtype", "float32", *store])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["rag", "list", "-c", "kb", "--json", *store])
    assert r.exit_code == 0, r.output
    assert note.name in r.output
    ask = ["rag", "ask", "what is the capital of france?", "-c", "kb", "--json", *store]
    r = runner.invoke(
        app, [*ask, "--max-new-tokens", "6", "--temperature", "0", "--dtype", "float32"]
    )
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output[r.output.index("{") :])  # after any stderr line
    assert answer["sources"] and Path(answer["sources"][0]["source"]).name == note.name
    r = runner.invoke(app, ["rag", "delete", "-c", "kb", "--yes", *store])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["rag", "list", "--json", *store])
    assert "kb" not in r.output


def test_no_deprecation_warnings_from_gemlm_calls(folders, kind) -> None:
    """Load, embed (also keeping the KV cache) and generate: the current transformers API."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        gem = GEMModel.from_pretrained(str(folders[kind]), dtype="float32")
        ids, _ = gem.tokenize_for_embedding(["the cat sat"])
        kept = gem.embed_keep_cache(ids[0][: -len(gem.special_ids)])
        gem.encode(TEXTS)
        gem.complete("the cat", max_new_tokens=2, temperature=0.0)
    assert kept.cache.get_seq_length() == len(ids[0])  # the cache was filled


# ---------------------------------------------------------------------------- the server
def test_models_card_reports_the_front(served, gems, kind) -> None:
    gem = gems[kind]
    card = httpx.get(served.url + "/v1/models", timeout=10).json()["data"]
    assert [c["id"] for c in card] == [served.name]
    assert card[0]["max_model_len"] == gem.context_length
    assert card[0]["embedding_dimension"] == gem.embedding_dim


def test_openai_client_embeddings_equal_encode(served, gems, kind) -> None:
    client = openai_client(served)
    by_default = client.embeddings.create(model=served.name, input=TEXTS)  # base64 on the wire
    as_float = client.embeddings.create(model=served.name, input=TEXTS, encoding_format="float")
    got = np.array([d.embedding for d in by_default.data], dtype=np.float32)
    want = gems[kind].encode(TEXTS)
    assert got.shape == (len(TEXTS), gems[kind].embedding_dim)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(np.array([d.embedding for d in as_float.data], np.float32), got)
    if kind != "plain":  # the served model is the trained one, not its base
        assert not np.allclose(want, gems["plain"].encode(TEXTS), atol=1e-3)


def test_greedy_chat_is_the_models_and_gated_chat_is_the_bases(served, gems, kind) -> None:
    client = openai_client(served)
    reply = client.chat.completions.create(
        model=served.name, messages=CHAT, temperature=0, max_tokens=NEW_TOKENS
    )
    mine = gems[kind].complete(CHAT, chat=True, max_new_tokens=NEW_TOKENS, temperature=0.0)
    assert reply.choices[0].message.content == mine.text
    assert reply.usage.completion_tokens == mine.completion_tokens
    assert reply.usage.prompt_tokens == mine.prompt_tokens
    pieces = client.chat.completions.create(
        model=served.name, messages=CHAT, temperature=0, max_tokens=NEW_TOKENS, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices) == mine.text
    if kind == "special_only":  # the gate leaves generation to the base model, bit for bit
        base = gems["plain"].complete(CHAT, chat=True, max_new_tokens=NEW_TOKENS, temperature=0.0)
        assert mine.token_ids == base.token_ids and mine.text == base.text


def test_rag_answers_from_the_indexed_file(served, note) -> None:
    r = httpx.post(
        served.url + "/v1/rag",
        json={"question": "what is the capital of france?", "max_tokens": 8, "temperature": 0.0},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["answer"], str) and body["usage"]["completion_tokens"] >= 1
    assert body["sources"] and {Path(s["source"]).name for s in body["sources"]} == {note.name}
    assert "capital of france" in body["sources"][0]["text"]


# ---------------------------------------------------------------------------- real clients
def test_langchain_embeddings_send_text_and_equal_encode(served, gems, kind) -> None:
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(
        model=served.name,
        base_url=served.url + "/v1",
        api_key="unused",
        check_embedding_ctx_length=False,  # send text: no tiktoken, no foreign token ids
        max_retries=0,
    )
    gem = gems[kind]
    np.testing.assert_allclose(np.array(emb.embed_documents(TEXTS)), gem.encode(TEXTS), atol=1e-5)
    np.testing.assert_allclose(emb.embed_query(TEXTS[1]), gem.encode(TEXTS[1]), atol=1e-5)


def test_langchain_chat_invoke_and_stream(served, gems, kind) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        model=served.name,
        base_url=served.url + "/v1",
        api_key="unused",
        temperature=0,
        max_tokens=NEW_TOKENS,
        max_retries=0,
    )
    want = gems[kind].complete(CHAT, chat=True, max_new_tokens=NEW_TOKENS, temperature=0.0).text
    assert chat.invoke(CHAT[0]["content"]).content == want
    assert "".join(c.content for c in chat.stream(CHAT[0]["content"])) == want


def test_llama_index_llm_and_embedding(served, gems, kind) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding
    from llama_index.llms.openai_like import OpenAILike

    gem = gems[kind]
    common = dict(model=served.name, api_base=served.url + "/v1", api_key="unused")
    common |= dict(temperature=0.0, max_tokens=NEW_TOKENS, max_retries=0, context_window=256)
    prompt = "the cat sat on"
    completion = OpenAILike(**common, is_chat_model=False).complete(prompt)
    assert completion.text == gem.complete(prompt, max_new_tokens=NEW_TOKENS, temperature=0.0).text
    reply = OpenAILike(**common, is_chat_model=True).chat([ChatMessage(**CHAT[0])])
    want = gem.complete(CHAT, chat=True, max_new_tokens=NEW_TOKENS, temperature=0.0).text
    assert reply.message.content == want

    emb = OpenAILikeEmbedding(
        model_name=served.name, api_base=served.url + "/v1", api_key="unused", max_retries=0
    )
    np.testing.assert_allclose(
        np.array(emb.get_text_embedding_batch(TEXTS)), gem.encode(TEXTS), atol=1e-5
    )
    np.testing.assert_allclose(emb.get_query_embedding(TEXTS[0]), gem.encode(TEXTS[0]), atol=1e-5)


# ---------------------------------------------------------------------------- the end
def test_sigterm_stops_the_server(served) -> None:
    """Last in the module: uvicorn shuts down gracefully and the port is closed."""
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in served.output()
    assert "FutureWarning" not in served.output()  # loading, embedding, chat, RAG: current APIs
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", served.port)) != 0
