"""Read .txt / .md / .jsonl / SQuAD-style .json files and split them into passages.

Chunking is token-aware: windows of ``chunk_tokens`` tokens of the embedding model's tokenizer
with ``overlap`` tokens shared between neighbours, cut back to the original text through the
tokenizer's character offsets (the passage text is always a verbatim slice of the document).
A SQuAD-style JSON gives one passage per paragraph, with the article title as metadata.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TEXT_SUFFIXES = (".txt", ".md")
SUPPORTED_SUFFIXES = (*TEXT_SUFFIXES, ".jsonl", ".json")
JSONL_TEXT_FIELDS = ("text", "content", "context", "passage", "body")
ID_NAMESPACE = uuid.UUID("6b1e2c4e-6f0a-5d4e-9a3c-2f1b0c9d8e7a")  # gemlm passages


@dataclass
class Document:
    """One text to index, before chunking. ``split=False`` keeps it as a single passage."""

    text: str
    source: str
    title: str = ""
    doc_id: str = ""
    split: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Passage:
    """One chunk as stored: text + where it came from; ``id`` is stable across runs."""

    text: str
    source: str
    title: str
    doc_id: str
    chunk: int

    @property
    def id(self) -> str:
        """uuid5 of the source and the text's sha256: re-indexing never duplicates."""
        digest = hashlib.sha256(self.text.encode("utf-8")).hexdigest()
        return str(uuid.uuid5(ID_NAMESPACE, f"{self.source}\x00{self.doc_id}\x00{digest}"))

    def payload(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "source": self.source,
            "title": self.title,
            "doc_id": self.doc_id,
            "chunk": self.chunk,
        }


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files named directly, plus supported files found recursively under directories."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in SUPPORTED_SUFFIXES)
        else:
            out.append(p)
    return out


@dataclass
class FileRead:
    """One file as read: its documents, or why it could not be read (``problem``).

    ``source`` is what its passages record (the resolved path). A file read without a problem
    but holding no text (blank, or no usable row) is ``empty``.
    """

    path: Path
    source: str
    documents: list[Document] = field(default_factory=list)
    problem: str = ""

    @property
    def readable(self) -> bool:
        return not self.problem

    @property
    def empty(self) -> bool:
        return self.readable and not self.documents


def read_file(path: Path) -> FileRead:
    """Read one file without warning about it: unreadable, binary or malformed files come back
    with ``problem`` set (malformed lines of a readable .jsonl still warn)."""
    source = str(path.resolve()) if path.exists() else str(path)

    def problem(why: str) -> FileRead:
        return FileRead(path, source, problem=why)

    try:
        raw = path.read_bytes()
    except OSError as exc:
        return problem(f"cannot read it ({exc.strerror or exc})")
    if b"\x00" in raw[:8192]:
        return problem("looks like a binary file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return problem("not UTF-8 text")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        docs = [Document(text, source, title=path.stem, doc_id=path.name)] if text.strip() else []
        return FileRead(path, source, docs)
    if suffix == ".jsonl":
        return FileRead(path, source, list(_jsonl_documents(text, source, path)))
    if suffix == ".json":
        return _json_file(text, source, path)
    return problem(f"unsupported type (use {SUPPORTED_SUFFIXES})")


def read_documents(path: Path) -> list[Document]:
    """The documents in one file; unreadable, binary or malformed files warn and give []."""
    read = read_file(path)
    if read.problem:
        warnings.warn(f"skipping {path}: {read.problem}", stacklevel=2)
    return read.documents


def _jsonl_documents(text: str, source: str, path: Path) -> Iterator[Document]:
    bad = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        body = _text_field(row) if isinstance(row, dict) else None
        if body is None:
            bad += 1
            continue
        doc_id = str(row.get("id", row.get("_id", f"line{n}")))
        yield Document(body, source, title=str(row.get("title", "")), doc_id=doc_id)
    if bad:
        warnings.warn(
            f"{path}: {bad} lines skipped (not JSON objects with one of {JSONL_TEXT_FIELDS})",
            stacklevel=3,
        )


def _text_field(row: dict[str, Any]) -> str | None:
    for key in JSONL_TEXT_FIELDS:
        if isinstance(row.get(key), str) and row[key].strip():
            return row[key]
    return None


def _json_file(text: str, source: str, path: Path) -> FileRead:
    if not text.strip():
        return FileRead(path, source)  # an empty .json is empty, not invalid
    try:
        data = json.loads(text)
    except ValueError as exc:
        return FileRead(path, source, problem=f"invalid JSON ({exc})")
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return FileRead(path, source, squad_documents(data, source))
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        lines = "\n".join(json.dumps(r) for r in data)
        return FileRead(path, source, list(_jsonl_documents(lines, source, path)))
    return FileRead(path, source, problem="JSON is neither SQuAD-style nor a list of objects")


def squad_documents(data: dict[str, Any], source: str) -> list[Document]:
    """One unsplit document per SQuAD paragraph; doc_id = ``<title>#<paragraph index>``."""
    docs = []
    for article in data["data"]:
        title = str(article.get("title", ""))
        for i, para in enumerate(article.get("paragraphs", [])):
            context = para.get("context", "")
            if context.strip():
                docs.append(Document(context, source, title, f"{title}#{i}", split=False))
    return docs


def chunk_document(
    doc: Document, tokenizer: PreTrainedTokenizerBase, chunk_tokens: int = 256, overlap: int = 32
) -> list[Passage]:
    """Split a document into overlapping token windows (verbatim text slices).

    Windows start ``chunk_tokens - overlap`` tokens apart; the last window ends at the text's
    end. A document that fits in one window (or has ``split=False``) is one passage.
    """
    if chunk_tokens < 1 or not 0 <= overlap < chunk_tokens:
        raise ValueError(
            f"need chunk_tokens >= 1 and 0 <= overlap < chunk_tokens, got {chunk_tokens}, {overlap}"
        )
    text = doc.text.strip()

    def passage(body: str, i: int) -> Passage:
        return Passage(body, doc.source, doc.title, doc.doc_id, i)

    if not doc.split:
        return [passage(text, 0)]
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    if len(offsets) <= chunk_tokens:
        return [passage(text, 0)]
    step = chunk_tokens - overlap
    out, start = [], 0
    while True:
        end = min(start + chunk_tokens, len(offsets))
        body = text[offsets[start][0] : offsets[end - 1][1]].strip()
        if body:
            out.append(passage(body, len(out)))
        if end == len(offsets):
            return out
        start += step
