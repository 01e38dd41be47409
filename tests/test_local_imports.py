"""Function-local imports of gemlm's own modules (``make lint``: tools/local_imports.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("local_imports", ROOT / "tools/local_imports.py")
local_imports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(local_imports)

OFFENDING = """\
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .config import GEMConfig

if TYPE_CHECKING:
    from .model import GEMModel


def load(name: str) -> GEMModel:
    import torch

    from .model import GEMModel

    return GEMModel.from_pretrained(name)


class Engine:
    from . import kind

    def start(self) -> None:
        if self:
            import gemlm.sources
"""


def test_the_package_passes_and_every_allowance_is_used_and_explained(capsys) -> None:
    assert local_imports.main([]) == 0, capsys.readouterr().out
    for key, reason in local_imports.ALLOWED.items():
        assert (ROOT / key.split(":")[0]).is_file(), key
        assert reason.strip() and "\n" not in reason, key


def test_a_function_local_import_of_the_package_fails(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(OFFENDING)
    assert local_imports.main([str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[1] for line in lines[:2]] == [
        "from .model import GEMModel (in load)",
        "import gemlm.sources (in Engine.start)",
    ]
    assert "2 function-local import(s)" in lines[2]


def test_an_allowance_covers_a_function_or_a_file_and_a_stale_one_fails(
    monkeypatch, capsys
) -> None:
    name = "gemlm/bad.py"
    for allowed in ({f"{name}:load": "optional: x", f"{name}:Engine.start": "cycle"}, {name: "x"}):
        found, used = local_imports.offences(OFFENDING, name, allowed)
        assert found == [] and used == set(allowed)
    found, _ = local_imports.offences(OFFENDING, name, {f"{name}:load": "optional: x"})
    assert found == [f"{name}:26: import gemlm.sources (in Engine.start)"]

    stale = {**local_imports.ALLOWED, "gemlm/config.py:load": "gone"}
    monkeypatch.setattr(local_imports, "ALLOWED", stale)
    assert local_imports.main([]) == 1
    assert "ALLOWED['gemlm/config.py:load'] matches no local import" in capsys.readouterr().out


def test_the_modules_the_allowances_keep_light_import_light() -> None:
    """What the ``light:`` reasons in ALLOWED promise, in a fresh interpreter."""
    code = (
        "import sys, gemlm, gemlm.config, gemlm.cli.main, gemlm.distributed, "
        "gemlm.training.config, gemlm.rag.types; "
        "print(sorted(m for m in ('torch', 'transformers', 'ray', 'datasets', 'qdrant_client', "
        "'qdrant_edge', 'fastapi', 'mteb', 'gemlm.model') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
