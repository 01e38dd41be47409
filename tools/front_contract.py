"""``make lint``: only GEMModel and its engines reach the Hugging Face model behind a GEMModel,
and only the embedding format builds what it embeds.

    python tools/front_contract.py [PATH ...]     (default: the gemlm package)

import-linter (``[tool.importlinter]`` in pyproject.toml) checks the import side: serving and
rag never import ``masking``/``tokens``/``packing``/``adapter``. This checks attribute access,
which imports cannot show: outside the engine files (``model.py``, ``embedding.py``,
``generation.py``, ``loading.py``, ``export.py``) and ``training/`` (which builds and replaces
the model it trains), nothing writes ``model.model``, ``gem.model``, ``<x>.model.model`` or
``<x>.gem.model``: callers use the front (``encode``, ``tokenize_for_embedding``,
``embed_ids``, ``complete``, ``stream``, ``context_length``, ``vocab_size`` ...).

It also checks that one object builds what a GEM model embeds (:mod:`gemlm.embedding_format`):
outside that module and ``config.py`` (the saved fields it is derived from), no code appends
the readout tail (``append_specials``, ``attach_tail``, ``gem.embedder.tail``), reads the
prompts or the readout suffix off a config (``config.prompts``, ``cfg.readout_suffix``: read
the format instead),
concatenates a prompt before a text (``prompt + text``) or tokenizes a prompt with the
tokenizer's BOS; ``generation.py``, whose prompts are generation prompts, may do the last.
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


# --------------------------------------------------------------------------- the embedding input
FORMAT_HOME = {"embedding_format.py", "config.py"}  # the format, and the fields it comes from
TAIL_BUILDERS = {"append_specials", "attach_tail"}  # cut a text and append suffix + specials
FORMAT_SETTINGS = {"prompts", "default_prompt_name", "readout_suffix"}
CONFIGS = {"config", "cfg"}  # names (or attributes) a GEMConfig / training config goes by
ENGINE_PARTS = {"suffix_ids", "tail"}  # the engine's pieces of the input, off ``x.embedder``
PROMPT_TOKENIZERS = {"generation.py"}  # may tokenize a (generation) prompt with BOS


def _is_prompt(node: ast.AST) -> bool:
    """``prompt``, ``query_prompt``, ``cfg.prompt``, ``gem.prompt("query")``: a prompt value."""
    if isinstance(node, ast.Call):
        node = node.func
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return name == "prompt" or name.endswith("_prompt")


def _copied_settings(tree: ast.AST) -> set[int]:
    """ids of ``y.s`` nodes in ``x.s = y.s``: copying a setting onto a config builds nothing."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Attribute)
        and any(isinstance(t, ast.Attribute) and t.attr == node.value.attr for t in node.targets)
    }


def _format_offence(node: ast.AST, copied: set[int], prompt_tokenizer: bool) -> bool:
    if isinstance(node, ast.Call):
        f = node.func
        name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")
        with_bos = any(
            k.arg == "add_special_tokens" and getattr(k.value, "value", None) is True
            for k in node.keywords
        )
        prompted = bool(node.args) and _is_prompt(node.args[0])
        return name in TAIL_BUILDERS or (with_bos and prompted and not prompt_tokenizer)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_prompt(node.left)
    if isinstance(node, ast.Attribute) and node.attr in FORMAT_SETTINGS:
        v = node.value
        on_config = (isinstance(v, ast.Name) and v.id in CONFIGS) or (
            isinstance(v, ast.Attribute) and v.attr == "config"
        )
        return on_config and isinstance(node.ctx, ast.Load) and id(node) not in copied
    if isinstance(node, ast.Attribute) and node.attr in ENGINE_PARTS:
        return isinstance(node.value, ast.Attribute) and node.value.attr == "embedder"
    return False


def format_offences(source: str, name: str = "<string>") -> list[str]:
    """``file:line: text`` of every rebuilding of the embedding input outside its format.

    >>> format_offences("ids = tok(prompt + t, add_special_tokens=True)")
    ['<string>:1: prompt + t']
    >>> format_offences("s = m.config.readout_suffix; ids = append_specials(x, tail, 8)")
    ['<string>:1: m.config.readout_suffix', '<string>:1: append_specials(x, tail, 8)']
    >>> format_offences("ids = text + gem.embedder.tail")
    ['<string>:1: gem.embedder.tail']
    >>> format_offences("gem.config.readout_suffix = cfg.readout_suffix; p = fmt.prompt('query')")
    []
    """
    tree = ast.parse(source)
    copied = _copied_settings(tree)
    prompt_tokenizer = Path(name).name in PROMPT_TOKENIZERS
    found = [
        (node.lineno, node.col_offset, f"{name}:{node.lineno}: {ast.unparse(node)}")
        for node in ast.walk(tree)
        if _format_offence(node, copied, prompt_tokenizer)
    ]
    return [text for *_, text in sorted(found)]


def format_checked_files(package: Path) -> list[Path]:
    """The package's modules outside the embedding format's home."""
    return [p for p in sorted(package.rglob("*.py")) if not _format_home(p, package)]


def _format_home(path: Path, package: Path) -> bool:
    return path.resolve().parent == package.resolve() and path.name in FORMAT_HOME


# --------------------------------------------------------------------------- the front
def checked_files(package: Path) -> list[Path]:
    """The package's modules outside the engines and the model-owning packages."""
    return [
        p
        for p in sorted(package.rglob("*.py"))
        if not (p.parent == package and p.name in ENGINES)
        and p.relative_to(package).parts[0] not in OWNERS
    ]


def main(argv: list[str]) -> int:
    package = ROOT / "gemlm"
    files = [Path(a) for a in argv] or checked_files(package)
    found = [o for f in files for o in offences(f.read_text(encoding="utf-8"), str(f))]
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} access(es) to the model behind GEMModel: use the GEMModel front")
    inputs = [Path(a) for a in argv if not _format_home(Path(a), package)]
    rebuilt = [
        o
        for f in (inputs if argv else format_checked_files(package))
        for o in format_offences(f.read_text(encoding="utf-8"), str(f))
    ]
    for line in rebuilt:
        print(line)
    if rebuilt:
        print(
            f"{len(rebuilt)} rebuilding(s) of the embedding input: use "
            "gemlm.embedding_format.EmbeddingFormat (config.embedding_format)"
        )
    return 1 if found or rebuilt else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
