"""The front/engine contract that ``make lint`` checks (tools/front_contract.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("front_contract", ROOT / "tools/front_contract.py")
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)


def test_the_package_keeps_the_contract() -> None:
    files = contract.checked_files(ROOT / "gemlm")
    names = {str(p.relative_to(ROOT)) for p in files}
    assert "gemlm/rag/ask.py" in names and "gemlm/serving/context.py" in names
    assert "gemlm/model.py" not in names and not any(n.startswith("gemlm/training/") for n in names)
    assert contract.main([str(p) for p in files]) == 0


def test_reaching_through_the_front_is_caught(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "cfg = model.model.config\n"  # rag's old context-length read
        "out = gem.model.generate(x)\n"  # serving's old streaming loop
        "n = self.gem.model.get_input_embeddings()\n"
        "ok = gem.encode(['a']) + ctx.gem.context_length\n"
    )
    assert contract.main([str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[1] for line in lines[:3]] == [
        "model.model",
        "gem.model",
        "self.gem.model",
    ]


def test_the_embedding_input_is_built_only_by_its_format() -> None:
    files = contract.format_checked_files(ROOT / "gemlm")
    names = {str(p.relative_to(ROOT)) for p in files}
    assert "gemlm/embedding.py" in names and "gemlm/training/collator.py" in names
    assert "gemlm/embedding_format.py" not in names and "gemlm/config.py" not in names
    assert [o for p in files for o in contract.format_offences(p.read_text(), str(p))] == []


def test_rebuilding_the_embedding_input_is_caught(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "ids = tok([prompt + t for t in texts], add_special_tokens=True)\n"  # pairs' old rows
        "protect = len(tok(cfg.prompt, add_special_tokens=True)['input_ids'])\n"  # run.py's
        "seq, _ = append_specials(text, self.tail, self.config.max_length)\n"  # the engine's
        "suffix = gem.embedder.suffix_ids\n"  # the collator's old suffix
        "doc = cfg.prompts.get('document', '')\n"  # rag's old identity
        "gem.config.readout_suffix = cfg.readout_suffix\n"  # copying a setting: fine
        "ok = fmt.build(texts, 'query', tokenizer=tok); p = gem.prompt('query')\n"
    )
    assert contract.main([str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[1] for line in lines[:5]] == [
        "prompt + t",
        "tok(cfg.prompt, add_special_tokens=True)",
        "append_specials(text, self.tail, self.config.max_length)",
        "gem.embedder.suffix_ids",
        "cfg.prompts",
    ]


def test_no_python_file_is_over_400_lines() -> None:
    """One concern per file (issue 24): a file past 400 lines is split, not grown."""
    long = {
        str(p.relative_to(ROOT)): n
        for folder in ("gemlm", "benchmarks", "tools", "tests")
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, f"split these files: {long}"
