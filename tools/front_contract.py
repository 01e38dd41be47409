"""``make lint``: only GEMModel and its engines reach the Hugging Face model behind a GEMModel.

    python tools/front_contract.py [PATH ...]     (default: the gemlm package)

import-linter (``[tool.importlinter]`` in pyproject.toml) checks the import side: serving and
rag never import ``masking``/``tokens``/``packing``/``adapter``. This checks attribute access,
which imports cannot show: outside the engine files (``model.py``, ``embedding.py``,
``generation.py``, ``loading.py``, ``export.py``) and ``training/`` (which builds and replaces
the model it trains), nothing writes ``model.model``, ``gem.model``, ``<x>.model.model`` or
``<x>.gem.model``: callers use the front (``encode``, ``tokenize_for_embedding``,
``embed_ids``, ``complete``, ``stream``, ``context_length``, ``vocab_size`` ...).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = {"model.py", "embedding.py", "generation.py", "loading.py", "export.py"}
OWNERS = ("training",)  # packages that build the model and may hold its parts


def offences(source: str, name: str = "<string>") -> list[str]:
    """``file:line: text`` of every access to the HF model through a GEMModel in ``source``.

    >>> offences("cfg = self.model.model.config")
    ['<string>:1: self.model.model']
    >>> offences("ids = gem.tokenize_for_embedding(texts); v = ctx.gem.encode(t)")
    []
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Attribute) and node.attr == "model"):
            continue
        v = node.value
        through = (isinstance(v, ast.Attribute) and v.attr in ("model", "gem")) or (
            isinstance(v, ast.Name) and v.id in ("gem", "model")
        )
        if through:
            found.append((node.lineno, f"{name}:{node.lineno}: {ast.unparse(node)}"))
    return [text for _, text in sorted(found)]


def checked_files(package: Path) -> list[Path]:
    """The package's modules outside the engines and the model-owning packages."""
    return [
        p
        for p in sorted(package.rglob("*.py"))
        if not (p.parent == package and p.name in ENGINES)
        and p.relative_to(package).parts[0] not in OWNERS
    ]


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or checked_files(ROOT / "gemlm")
    found = [o for f in files for o in offences(f.read_text(encoding="utf-8"), str(f))]
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} access(es) to the model behind GEMModel: use the GEMModel front")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
