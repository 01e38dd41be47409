"""Loading, splitting and tokenizing training text (tiny local files, no network)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gemlm.corpus import load_texts, train_eval_split
from gemlm.paths import data_dir
from gemlm.training.data import tokenize_and_chunk, tokenize_texts

try:
    WIKI_FILE = data_dir() / "wikipedia_en_wikiextractor/AA/wiki_00"
except FileNotFoundError:
    WIKI_FILE = Path("/nonexistent")
SENTENCES = [
    "the cat sat on the mat and the dog sat on the rug",
    "a quick brown fox jumps over the lazy dog every day",
    "language models can embed text and generate text as well",
    "paris is the capital of france and berlin is the capital of germany",
]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in records))


def wiki_doc(doc_id: int, title: str, *body: str) -> str:
    lines = [f'<doc id="{doc_id}" url="?curid={doc_id}" title="{title}">', title, "", *body]
    return "\n".join([*lines, "", "</doc>", ""])


WIKI_TEXT = wiki_doc(
    1,
    "Alpha Centauri Expedition Chronicles Volume One",
    "Alpha is the first paragraph of the first article with plenty of words.",
    "History.",
    "The second paragraph of the first article also has more than eight words.",
) + wiki_doc(2, "Beta Redirect")  # a redirect stub: title only, no body


def texts(ds: datasets.Dataset) -> list[str]:
    assert ds.column_names == ["text"]
    return ds["text"][:]


# --------------------------------------------------------------------------- sources


def test_txt_one_document_per_line(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.txt", "\n".join(SENTENCES) + "\n")
    assert texts(load_texts(path)) == SENTENCES


def test_txt_blank_lines_make_paragraphs(tmp_path: Path) -> None:
    body = f"{SENTENCES[0]}\n{SENTENCES[1]}\n\n\n{SENTENCES[2]}\n  \n{SENTENCES[3]}\n"
    path = write(tmp_path / "paras.txt", body)
    expected = [f"{SENTENCES[0]} {SENTENCES[1]}", SENTENCES[2], SENTENCES[3]]
    assert texts(load_texts(str(path))) == expected


def test_txt_trailing_blank_lines_keep_line_mode(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.txt", "\n\n" + "\n".join(SENTENCES) + "\n\n\n")
    assert texts(load_texts(path)) == SENTENCES


def test_min_words_filters_short_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.txt", "Heading.\ntwo words\n" + SENTENCES[0] + "\n")
    assert texts(load_texts(path)) == [SENTENCES[0]]
    assert texts(load_texts(path, min_words=2)) == ["two words", SENTENCES[0]]
    assert len(load_texts(path, min_words=0)) == 3


def test_non_utf8_bytes_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 ".encode("latin-1") + SENTENCES[0].encode() + b"\n")
    (text,) = texts(load_texts(path))
    assert text.startswith("caf\ufffd ")


def test_jsonl_with_custom_column_skips_nulls_and_blanks(tmp_path: Path) -> None:
    records = [{"body": s, "id": i} for i, s in enumerate(SENTENCES[:2])]
    records += [{"body": None, "id": 8}, {"body": "   ", "id": 9}, {"body": "short", "id": 10}]
    path = write_jsonl(tmp_path / "data.jsonl", records)
    assert texts(load_texts(path, text_column="body")) == [*SENTENCES[:2], "short"]


def test_json_list_of_records(tmp_path: Path) -> None:
    path = write(tmp_path / "data.json", json.dumps([{"text": s} for s in SENTENCES]))
    assert texts(load_texts(path)) == SENTENCES


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"content": SENTENCES, "n": list(range(4))}), path)
    assert texts(load_texts(path, text_column="content")) == SENTENCES


def test_save_to_disk_folder(tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    datasets.Dataset.from_dict({"body": [*SENTENCES, ""], "n": list(range(5))}).save_to_disk(folder)
    assert texts(load_texts(folder, text_column="body")) == SENTENCES


def test_save_to_disk_dataset_dict_picks_split(tmp_path: Path) -> None:
    folder = tmp_path / "saved_dict"
    splits = {"train": SENTENCES[:3], "validation": SENTENCES[3:]}
    dd = datasets.DatasetDict(
        {k: datasets.Dataset.from_dict({"text": v}) for k, v in splits.items()}
    )
    dd.save_to_disk(folder)
    assert texts(load_texts(folder)) == SENTENCES[:3]
    assert texts(load_texts(folder, split="validation")) == SENTENCES[3:]
    with pytest.raises(ValueError, match="no split 'test'"):
        load_texts(folder, split="test")


def test_wikiextractor_file(tmp_path: Path) -> None:
    path = write(tmp_path / "wiki_00", WIKI_TEXT)
    assert texts(load_texts(path)) == [
        "Alpha is the first paragraph of the first article with plenty of words.",
        "The second paragraph of the first article also has more than eight words.",
    ]


def test_wikiextractor_folder_is_read_recursively_in_order(tmp_path: Path) -> None:
    root = tmp_path / "wiki"
    write(root / "AB" / "wiki_00", wiki_doc(3, "Gamma", SENTENCES[2]))
    write(root / "AA" / "wiki_01", wiki_doc(2, "Beta", SENTENCES[1]))
    write(root / "AA" / "wiki_00", wiki_doc(1, "Alpha", SENTENCES[0]))
    write(root / ".hidden" / "wiki_00", wiki_doc(4, "Hidden", SENTENCES[3]))
    write(root / "README", "not a wiki dump at all, so it is skipped entirely\n")
    assert texts(load_texts(root)) == SENTENCES[:3]


def test_list_of_sources_is_concatenated_in_order(tmp_path: Path) -> None:
    txt = write(tmp_path / "a.txt", SENTENCES[0] + "\n")
    jsonl = write_jsonl(tmp_path / "b.jsonl", [{"text": SENTENCES[1]}])
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": [SENTENCES[2]]}).save_to_disk(saved)
    wiki = write(tmp_path / "wiki" / "AA" / "wiki_00", wiki_doc(1, "T", SENTENCES[3]))
    ds = load_texts([txt, str(jsonl), saved, wiki.parent.parent])
    assert texts(ds) == SENTENCES


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", "saved"])
def test_missing_column_names_file_column_and_existing_columns(tmp_path: Path, suffix: str) -> None:
    records = [{"body": s, "lang": "en"} for s in SENTENCES]
    path = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, records)
    elif suffix == ".json":
        write(path, json.dumps(records))
    elif suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        datasets.Dataset.from_list(records).save_to_disk(path)
    with pytest.raises(ValueError) as err:
        load_texts(path)
    message = str(err.value)
    assert str(path) in message and "'text'" in message
    assert "'body'" in message and "'lang'" in message


@pytest.mark.parametrize("name", ["missing.txt", "/nope/at/all", "./not/here"])
def test_missing_path(tmp_path: Path, name: str) -> None:
    with pytest.raises(FileNotFoundError, match=name.lstrip("./")):
        load_texts(name)


def test_missing_path_inside_a_list(tmp_path: Path) -> None:
    ok = write(tmp_path / "a.txt", SENTENCES[0] + "\n")
    with pytest.raises(FileNotFoundError, match="gone.jsonl"):
        load_texts([ok, tmp_path / "gone.jsonl"])


@pytest.mark.parametrize("content", ["", "\n\n", "too short\nalso short\n"])
def test_file_without_text(tmp_path: Path, content: str) -> None:
    path = write(tmp_path / "empty.txt", content)
    with pytest.raises(ValueError, match=r"empty\.txt: no text"):
        load_texts(path)


def test_folder_without_text_files(tmp_path: Path) -> None:
    write(tmp_path / "notes" / "LICENSE", "nothing to train on here\n")
    with pytest.raises(ValueError, match="no text files"):
        load_texts(tmp_path / "notes")


def test_unreachable_hub_id(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ValueError, match="neither a local path nor a reachable hub dataset"):
        load_texts("some-org/some-corpus")


def test_hub_dataset_gets_the_column_check(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake(name: str, split: str) -> datasets.Dataset:
        calls.append((name, split))
        return datasets.Dataset.from_dict({"sentence": SENTENCES, "label": [0, 1, 0, 1]})

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert texts(load_texts("org/corpus", text_column="sentence", split="dev")) == SENTENCES
    assert calls == [("org/corpus", "dev")]
    with pytest.raises(ValueError, match="'sentence', 'label'|'label', 'sentence'"):
        load_texts("org/corpus")


# --------------------------------------------------------------------------- splitting


def numbered(n: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"text": [f"row {i}" for i in range(n)]})


def test_train_eval_split_is_deterministic_and_disjoint() -> None:
    ds = numbered(500)
    train, held = train_eval_split(ds, eval_rows=100, seed=3)
    again_train, again_held = train_eval_split(ds, eval_rows=100, seed=3)
    assert held["text"][:] == again_held["text"][:] and train["text"][:] == again_train["text"][:]
    assert len(held) == 100 and len(train) == 400
    assert not set(train["text"]) & set(held["text"])
    assert set(train["text"]) | set(held["text"]) == set(ds["text"])
    _, other = train_eval_split(ds, eval_rows=100, seed=4)
    assert other["text"][:] != held["text"][:]


def test_train_eval_split_keeps_row_order() -> None:
    train, held = train_eval_split(numbered(500), eval_rows=100)
    for part in (train, held):
        numbers = [int(t.split()[1]) for t in part["text"]]
        assert numbers == sorted(numbers)


@pytest.mark.parametrize(("n", "expected"), [(2, 1), (20, 2), (200, 20), (201, 100)])
def test_small_datasets_hold_out_ten_percent(n: int, expected: int) -> None:
    train, held = train_eval_split(numbered(n), eval_rows=100)
    assert len(held) == expected and len(train) == n - expected


def test_train_eval_split_needs_two_rows() -> None:
    with pytest.raises(ValueError, match="at least 2 rows"):
        train_eval_split(numbered(1))


# --------------------------------------------------------------------------- tokenizing


def test_tokenize_and_chunk_packs_exact_blocks_with_eos(tokenizer) -> None:
    ds = datasets.Dataset.from_dict({"text": SENTENCES * 3})
    eos = tokenizer.eos_token_id
    stream = []
    for text in SENTENCES * 3:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
    chunks = tokenize_and_chunk(ds, tokenizer, seq_len=16)
    assert chunks.column_names == ["input_ids"]
    blocks = chunks["input_ids"][:]
    assert len(blocks) == len(stream) // 16
    assert all(len(b) == 16 for b in blocks)
    assert [t for b in blocks for t in b] == stream[: len(blocks) * 16]
    assert sum(b.count(eos) for b in blocks) >= len(SENTENCES * 3) - 1


def test_tokenize_and_chunk_without_eos(tokenizer) -> None:
    ds = datasets.Dataset.from_dict({"text": SENTENCES})
    blocks = tokenize_and_chunk(ds, tokenizer, seq_len=8, add_eos=False)["input_ids"][:]
    assert blocks and all(len(b) == 8 for b in blocks)
    assert tokenizer.eos_token_id not in {t for b in blocks for t in b}


def test_tokenize_and_chunk_rejects_tiny_seq_len(tokenizer) -> None:
    with pytest.raises(ValueError, match="seq_len"):
        tokenize_and_chunk(datasets.Dataset.from_dict({"text": SENTENCES}), tokenizer, 1)


def test_tokenize_texts_truncates_and_drops_tiny_rows(tokenizer) -> None:
    ds = datasets.Dataset.from_dict({"text": [SENTENCES[0], "a", "the cat"]})
    rows = tokenize_texts(ds, tokenizer, max_len=5)
    assert rows.column_names == ["input_ids"]
    ids = rows["input_ids"][:]
    full = tokenizer(SENTENCES[0], add_special_tokens=False)["input_ids"]
    assert len(full) > 5 and ids[0] == full[:5]
    assert len(ids) == 2 and 2 <= len(ids[1]) <= 5
    assert tokenizer.eos_token_id not in ids[0]


# --------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_real_wikiextractor_file() -> None:
    if not WIKI_FILE.exists():
        pytest.skip(f"{WIKI_FILE} not present")
    ds = load_texts(WIKI_FILE)
    assert len(ds) > 1000
    assert not any(t.startswith("<doc") or t == "</doc>" for t in ds["text"][:200])
