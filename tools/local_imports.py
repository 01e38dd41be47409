"""``make lint``: gemlm imports its own modules at the top of a module, not inside functions.

    python tools/local_imports.py [PATH ...]     (default: the gemlm package)

A function-local ``from .x import y`` (or ``from gemlm.x import y``, ``import gemlm.x``) hides
a dependency and an import cycle from import-linter and the reader. One stays only with a line
in :data:`ALLOWED` (``file`` or ``file:function`` -> why), for one of three reasons:

- it keeps an optional dependency optional (``optional: ray``; the extras in pyproject.toml:
  ray, qdrant, fastapi/uvicorn, mteb/sentence-transformers/sklearn),
- it keeps a light module light (``light: ...``): ``gemlm --help`` imports typer and rich
  only (tests/test_cli.py), ``gemlm.config`` and its neighbours import without torch
  (tests/test_kind.py), Ray's read workers import ``gemlm.distributed`` without torch,
- it breaks an import cycle (``cycle: ...``; better: fix the cycle).

Third-party imports are not checked: those inside functions keep an optional package
(ray, qdrant, mteb, sentence-transformers, sklearn) or a slow one (matplotlib, peft, torch in
a light module) out of an import. Checking the whole package also reports allowlist entries
that match no local import, so the list shrinks with the code.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "gemlm"

_CLI = "light: `gemlm --help` loads typer + rich only; the command's engine loads when it runs"
# file (relative to the repository) or file:function (its qualified name) -> why it stays local
ALLOWED: dict[str, str] = {
    "gemlm/__init__.py:__getattr__": "light: `import gemlm` loads no submodule (GEMModel: torch)",
    "gemlm/cli/options.py:load": "light: the CLI loads GEMModel (torch, transformers) in commands",
    "gemlm/cli/embed.py:embed_ray": "optional: ray; " + _CLI,
    "gemlm/cli/eval.py:eval_cmd": "optional: mteb, sentence-transformers; " + _CLI,
    "gemlm/cli/rag.py:read_index_inputs": _CLI + " (rag.indexing: numpy, tqdm)",
    "gemlm/cli/rag.py:index": "optional: ray (--engine ray); " + _CLI + " (numpy)",
    "gemlm/cli/rag.py:ask": _CLI + " (rag.ask, rag.store: numpy)",
    "gemlm/cli/rag_collections.py:open_store": _CLI + " (rag.store: numpy)",
    "gemlm/cli/serve.py:serve": "optional: fastapi, uvicorn; " + _CLI,
    "gemlm/cli/train.py:train": "light: training.run pulls torch; " + _CLI,
    "gemlm/distributed/actors.py:Embedder.__init__": (
        "light: Ray read workers import gemlm.distributed; the model (torch) loads in the actor"
    ),
    "gemlm/distributed/run.py:index_paths_ray": (
        "light: Ray read workers import gemlm.distributed; GEMModel (torch) loads if not given"
    ),
    "gemlm/rag/store.py:open_backend": "optional: qdrant-client, qdrant-edge-py (one engine)",
    "gemlm/training/quick_eval.py:quick_eval": "optional: mteb (evaluation.run)",
    "gemlm/training/config.py:GEMTrainingConfig.__post_init__": (
        "light: training.config (`gemlm train --help-config`) imports no datasets (pairs)"
    ),
}


def _own(node: ast.Import | ast.ImportFrom) -> bool:
    """Whether ``node`` imports a module of the package (relative imports always do)."""
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        return node.level > 0 or module == PACKAGE or module.startswith(PACKAGE + ".")
    return any(a.name == PACKAGE or a.name.startswith(PACKAGE + ".") for a in node.names)


def _walk(
    node: ast.AST, scope: tuple[str, ...], in_function: bool
) -> Iterator[tuple[str, ast.AST]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _walk(child, (*scope, child.name), True)
        elif isinstance(child, ast.ClassDef):
            yield from _walk(child, (*scope, child.name), in_function)
        else:
            if in_function and isinstance(child, ast.Import | ast.ImportFrom) and _own(child):
                yield ".".join(scope), child
            yield from _walk(child, scope, in_function)


def local_imports(source: str) -> list[tuple[str, int, str]]:
    """``(function, line, statement)`` of every function-local import of the package's modules.

    >>> local_imports("import torch\\nfrom .config import GEMConfig\\nclass A:\\n"
    ...               "    def f(self):\\n        import json\\n        from ..model import M\\n")
    [('A.f', 6, 'from ..model import M')]
    """
    tree = ast.parse(source)
    found = [(scope, node.lineno, ast.unparse(node)) for scope, node in _walk(tree, (), False)]
    return sorted(found, key=lambda f: f[1])


def offences(
    source: str, name: str = "<string>", allowed: Mapping[str, str] = ALLOWED
) -> tuple[list[str], set[str]]:
    """``file:line: statement (in function)`` of each local import not in ``allowed``, and
    the ``allowed`` keys that matched one.

    >>> offences("def f():\\n    from gemlm.model import GEMModel\\n", "gemlm/x.py")
    (['gemlm/x.py:2: from gemlm.model import GEMModel (in f)'], set())
    >>> offences("def f():\\n    from . import y\\n", "gemlm/x.py", {"gemlm/x.py:f": "optional"})
    ([], {'gemlm/x.py:f'})
    """
    found: list[str] = []
    used: set[str] = set()
    for scope, line, text in local_imports(source):
        keys = [k for k in (f"{name}:{scope}", name) if k in allowed]
        if keys:
            used.add(keys[0])
        else:
            found.append(f"{name}:{line}: {text} (in {scope})")
    return found, used


def _name(path: Path) -> str:
    """The allowlist's name of ``path``: relative to the repository when inside it."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or sorted((ROOT / PACKAGE).rglob("*.py"))
    found: list[str] = []
    used: set[str] = set()
    for f in files:
        more, matched = offences(f.read_text(encoding="utf-8"), _name(f), ALLOWED)
        found += more
        used |= matched
    stale = [] if argv else sorted(set(ALLOWED) - used)
    for line in found:
        print(line)
    if found:
        print(
            f"{len(found)} function-local import(s) of {PACKAGE}'s own modules: import at the "
            "top, or add the file:function to ALLOWED in tools/local_imports.py with its reason "
            "(optional dependency, light module, import cycle)"
        )
    for key in stale:
        print(f"tools/local_imports.py: ALLOWED[{key!r}] matches no local import: remove it")
    return 1 if found or stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
