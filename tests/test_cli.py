from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from gemlm.cli import app
from gemlm.cli.options import fail

CLI_DIR = Path(__file__).resolve().parents[1] / "gemlm" / "cli"
HEAVY = ("torch", "transformers", "qdrant_client", "ray")  # loaded when a command runs
COMMANDS = ["info", "embed", "similarity", "generate", "chat", "demo", "train", "serve", "eval"]

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_info(tiny_llama_dir) -> None:
    r = run("info", "--model", tiny_llama_dir, "--dtype", "float32")
    assert r.exit_code == 0, r.output
    assert "LlamaForCausalLM" in r.output and "<|gem_0|>" in r.output
    text = " ".join(r.output.split())
    assert "generation_defaults" in text and "'temperature': 0.0" in text and "greedy" in text


def test_version() -> None:
    r = run("--version")
    assert r.exit_code == 0 and r.output == f"gemlm {version('gemlm')}\n"


def test_serve_passes_the_input_policies(tiny_llama_dir, monkeypatch) -> None:
    import gemlm.serving

    seen: dict = {}
    monkeypatch.setattr(gemlm.serving, "run_server", lambda gem, **kw: seen.update(kw))
    r = run("serve", "--model", tiny_llama_dir, "--dtype", "float32")
    assert r.exit_code == 0, r.output
    assert not seen["limits"].truncate and not seen["limits"].accept_token_ids
    r = run("serve", "--model", tiny_llama_dir, "--truncate", "--accept-token-ids")
    assert r.exit_code == 0, r.output
    assert seen["limits"].truncate and seen["limits"].accept_token_ids


def test_embed_to_npy_and_jsonl(tiny_llama_dir, tmp_path) -> None:
    src = tmp_path / "texts.txt"
    src.write_text("the cat sat\n\na quick brown fox\n")
    npy = tmp_path / "e.npy"
    r = run("embed", "--file", src, "--out", npy, "--model", tiny_llama_dir, "--dtype", "float32")
    assert r.exit_code == 0, r.output
    assert np.load(npy).shape == (2, 32)
    jl = tmp_path / "e.jsonl"
    r = run("embed", "paris", "--out", jl, "--model", tiny_llama_dir, "--dtype", "float32")
    assert r.exit_code == 0, r.output
    row = json.loads(jl.read_text())
    assert row["text"] == "paris" and len(row["embedding"]) == 32


def test_embed_bad_jsonl_line_is_a_clear_error(tmp_path) -> None:
    src = tmp_path / "texts.jsonl"
    src.write_text('{"text": "fine"}\n\n{"txt": "no text field"}\n')
    r = run("embed", "--file", src)  # fails before any model loads
    assert r.exit_code == 2, r.output
    assert 'line 3: not a JSON object with a string "text" field' in " ".join(r.output.split())
    src.write_text("not json\n")
    r = run("embed", "--file", src)
    assert r.exit_code == 2 and "line 1: not a JSON object" in " ".join(r.output.split())


def test_similarity_and_generate(tiny_llama_dir) -> None:
    r = run("similarity", "the cat", "the dog", "--model", tiny_llama_dir)
    assert r.exit_code == 0 and "cosine similarity" in r.output
    r = run("generate", "the cat", "--no-chat", "--max-new-tokens", "4", "--model", tiny_llama_dir)
    assert r.exit_code == 0, r.output
    sampled = ["--temperature", "0.7", "--top-p", "0.9", "--repetition-penalty", "1.2"]
    r = run(
        "generate",
        "the cat",
        "--max-new-tokens",
        "4",
        "--seed",
        "1",
        *sampled,
        "--model",
        tiny_llama_dir,
    )
    assert r.exit_code == 0, r.output
    r = run("generate", "the cat", "--top-p", "1.5", "--model", tiny_llama_dir)
    assert r.exit_code == 2


def test_chat_session_ends_on_empty_line(tiny_llama_dir) -> None:
    r = runner.invoke(
        app, ["chat", "--model", str(tiny_llama_dir), "--max-new-tokens", "4"], input="hi\n\n"
    )
    assert r.exit_code == 0, r.output
    assert "gem>" in r.output


def test_errors_are_one_clear_line() -> None:
    r = run("info", "--model", "no-such-model")
    assert r.exit_code == 2 and "unknown model" in r.output
    r = run("embed", "--file", "/nope.txt", "--model", "no-such-model")
    assert r.exit_code == 2 and "no such file" in r.output
    r = run("embed")
    assert r.exit_code == 2


def cli_modules() -> dict[str, Path]:
    """gemlm.cli and each module in it, by dotted name."""
    return {
        "gemlm.cli" if f.stem == "__init__" else f"gemlm.cli.{f.stem}": f
        for f in sorted(CLI_DIR.glob("*.py"))
    }


def cli_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The gemlm.cli modules that ``name`` imports, at the top or inside a function."""
    package = "gemlm.cli"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


@pytest.mark.parametrize("module", sorted(cli_modules()))
def test_each_cli_module_imports_alone_and_light(module: str) -> None:
    code = f"import sys, {module}; print([m for m in {HEAVY!r} if m in sys.modules])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"{module} imports {r.stdout.strip()} at import time"


def test_cli_modules_import_each_other_without_a_cycle() -> None:
    modules = cli_modules()
    graph = {name: cli_imports(name, path, set(modules)) for name, path in modules.items()}
    assert graph["gemlm.cli.options"] == set(), "options is the leaf every command shares"
    assert graph["gemlm.cli.main"] >= {"gemlm.cli.rag", "gemlm.cli.models"}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as exc:  # pragma: no cover - the failure message
        pytest.fail(f"import cycle in gemlm/cli: {exc.args[1]}")


def test_help_lists_every_command() -> None:
    r = run("--help")
    assert r.exit_code == 0, r.output
    for name in [*COMMANDS, "rag"]:
        assert re.search(rf"^\W*{name}\s", r.output, re.M), f"{name} not in gemlm --help"
    r = run("rag", "--help")
    assert r.exit_code == 0, r.output
    for name in ["index", "ask"]:
        assert re.search(rf"^\W*{name}\s", r.output, re.M), f"{name} not in gemlm rag --help"


def test_fail_prints_one_escaped_line_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    exit_ = fail(ValueError("bad value [default: x]"))
    assert isinstance(exit_, typer.Exit) and exit_.exit_code == 2
    assert capsys.readouterr().out == "error: bad value [default: x]\n"
    assert fail("locked", code=1, stderr=True).exit_code == 1
    assert capsys.readouterr().err == "error: locked\n"


def test_demo_says_when_its_gem_token_is_untrained(tiny_llama_dir, tmp_path) -> None:
    from gemlm.model import GEMModel

    r = run("demo", "--model", tiny_llama_dir, "--dtype", "float32")
    assert r.exit_code == 0, r.output
    assert "cosine similarity" in r.output and "untrained" in " ".join(r.output.split())
    saved = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32").save_pretrained(
        tmp_path / "m"
    )
    r = run("demo", "--model", saved, "--dtype", "float32")  # a gemlm folder: no such note
    assert r.exit_code == 0, r.output
    assert "untrained" not in r.output
