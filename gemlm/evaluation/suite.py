"""Suites: which embedding task specs and which generation metrics (with their subsets) to run.

A suite is a YAML file (shipped ones in ``suites/``: ``dev``, ``quick``)::

    name: dev
    embedding: [stsbenchmark, {spec: scifact, sample: {n: 100}}]   # names, paths, or overrides
    generation:
      perplexity: {source: wikipedia_en_wikiextractor, eval_rows: 200, seed: 0, max_tokens: 256}
      mmlu: {folder: mmlu, per_subject: 10, seed: 0, shots: 5}
      arc_easy: {file: arc/ARC-Easy/test.jsonl, n: 500, seed: 0}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .specs import SpecError, TaskSpec, load_spec

SUITES_DIR = Path(__file__).parent / "suites"
GENERATION_KEYS = {
    "perplexity": {"source", "eval_rows", "seed", "max_tokens", "n"},
    "mmlu": {"folder", "per_subject", "seed", "shots", "protocols"},
    "arc": {"file", "n", "seed", "name"},
}


@dataclass
class Suite:
    name: str
    source_file: str
    tasks: list[TaskSpec] = field(default_factory=list)
    generation: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_suite(name_or_path: str | Path) -> Suite:
    """Parse a suite and every task spec it names (structural checks only)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
            raise SpecError(
                str(name_or_path), "<file>", f"no such suite file or shipped suite {known}"
            )
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise SpecError(path, "<root>", "a suite must be a mapping")
    suite = Suite(name=str(raw.get("name", path.stem)), source_file=str(path))
    for i, entry in enumerate(raw.get("embedding") or []):
        if isinstance(entry, dict):
            if "spec" not in entry:
                raise SpecError(path, f"embedding[{i}].spec", "is required")
            overrides = {k: v for k, v in entry.items() if k != "spec"}
            suite.tasks.append(load_spec(_relative(entry["spec"], path), overrides))
        else:
            suite.tasks.append(load_spec(_relative(entry, path)))
    names = [t.name for t in suite.tasks]
    if len(set(names)) != len(names):
        raise SpecError(path, "embedding", f"task names repeat: {names}")
    for key, cfg in (raw.get("generation") or {}).items():
        kind = "arc" if key.startswith("arc") else key
        if kind not in GENERATION_KEYS:
            raise SpecError(
                path, f"generation.{key}", "unknown metric (known: perplexity, mmlu, arc*)"
            )
        cfg = dict(cfg or {})
        unknown = set(cfg) - GENERATION_KEYS[kind]
        if unknown:
            raise SpecError(path, f"generation.{key}.{sorted(unknown)[0]}", "unknown key")
        suite.generation[key] = cfg
    return suite


def _relative(name: str, suite_file: Path) -> str:
    """A spec path relative to the suite file, else the name as given (a shipped spec)."""
    candidate = suite_file.parent / name
    return str(candidate) if candidate.is_file() else name
