from __future__ import annotations

from pathlib import Path

import pytest

from gemlm.rag.documents import Document, chunk_document, expand_paths, read_documents


def test_readers(docs: Path) -> None:
    files = {p.name: p for p in expand_paths([docs])}
    assert set(files) == {"long.txt", "notes.md", "rows.jsonl", "squad.json"}
    assert len(read_documents(files["long.txt"])) == 1
    with files["rows.jsonl"].open("a") as f:
        f.write('{"no_text": 1}\nnot json\n')
    with pytest.warns(UserWarning, match="2 lines skipped"):
        rows = read_documents(files["rows.jsonl"])
    assert [(d.doc_id, d.title) for d in rows] == [("w1", "Weather")]
    squad = read_documents(files["squad.json"])
    assert [d.doc_id for d in squad] == ["Capitals#0", "Capitals#1"]
    assert all(d.title == "Capitals" and not d.split for d in squad)


def test_binary_and_unreadable_are_skipped(tmp_path: Path, monkeypatch) -> None:
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\x00\x00\x01")
    with pytest.warns(UserWarning, match="image.txt: looks like a binary"):
        assert read_documents(binary) == []
    latin = tmp_path / "latin.md"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.warns(UserWarning, match="latin.md: not UTF-8"):
        assert read_documents(latin) == []
    locked = tmp_path / "locked.txt"
    locked.write_text("secret")
    real = Path.read_bytes

    def deny(self: Path) -> bytes:
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.warns(UserWarning, match="locked.txt: cannot read"):
        assert read_documents(locked) == []


def test_chunking_overlaps_and_is_verbatim(tokenizer) -> None:
    text = " ".join(f"word{i}" for i in range(200))
    doc = Document(text, "src", doc_id="d")
    chunks = chunk_document(doc, tokenizer, chunk_tokens=40, overlap=10)
    assert len(chunks) > 3
    assert all(c.text in text for c in chunks)
    assert chunks[0].text.startswith("word0") and chunks[-1].text.endswith("word199")
    ids = [tokenizer(c.text, add_special_tokens=False)["input_ids"] for c in chunks]
    assert max(len(i) for i in ids) <= 41  # re-tokenising a slice may merge one token
    tail = chunks[0].text.split()[-1]
    assert tail in chunks[1].text  # the overlap
    assert len({c.id for c in chunks}) == len(chunks)
    assert [c.id for c in chunks] == [c.id for c in chunk_document(doc, tokenizer, 40, 10)]
    with pytest.raises(ValueError):
        chunk_document(doc, tokenizer, chunk_tokens=10, overlap=10)
