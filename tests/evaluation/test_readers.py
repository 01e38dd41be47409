"""Real data as it comes: several files per split, csv quoting and a BOM, line-aligned files,
empty rows skipped and counted, label_map, where filters, train_sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gemlm.evaluation.readers import read_task
from gemlm.evaluation.specs import SpecError, parse_spec

from .conftest import _write_csv

PETS = ["the cat sat", "a dog ran", "the cat slept", "a dog barked"]


def _read(data: Path, raw: dict[str, Any], limit: int | None = None):
    return read_task(parse_spec(raw, "t.yaml"), data, limit)


def _sts(**extra: Any) -> dict[str, Any]:
    return {
        "name": "S",
        "type": "sts",
        "columns": {"sentence1": "a", "sentence2": "b", "score": "s"},
        "score_range": [0, 5],
        **extra,
    }


def _cls(**extra: Any) -> dict[str, Any]:
    return {"name": "C", "type": "classification", "columns": {"text": "t", "label": "l"}, **extra}


def _lines(path: Path, items: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{x}\n" for x in items), encoding="utf-8")


def test_csv_quoted_delimiters_newlines_and_bom(tmp_path):
    text = '\ufeffa,b,s\n"one, two","line\nbreak ""q""",1.5\nplain,"x,y",2\n'
    (tmp_path / "p.csv").write_text(text, encoding="utf-8")
    rows = _read(tmp_path, _sts(splits={"test": "p.csv"})).splits["test"]
    assert rows == [
        {"sentence1": "one, two", "sentence2": 'line\nbreak "q"', "score": 1.5},
        {"sentence1": "plain", "sentence2": "x,y", "score": 2.0},
    ]


def test_bom_in_tsv_jsonl_and_lines(tmp_path):
    (tmp_path / "p.tsv").write_text("\ufeffa\tb\ts\nx\ty\t1\n", encoding="utf-8")
    (tmp_path / "p.jsonl").write_text('\ufeff{"a": "x", "b": "y", "s": 2}\n', encoding="utf-8")
    (tmp_path / "c.txt").write_text("\ufefft;l\nhi;there;p\nyo;q\n", encoding="utf-8")
    for file in ("p.tsv", "p.jsonl"):
        rows = _read(tmp_path, _sts(splits={"test": file})).splits["test"]
        assert rows[0]["sentence1"] == "x", file
    spec = _cls(splits={"train": "c.txt", "test": "c.txt"}, format="lines", delimiter=";")
    assert _read(tmp_path, spec).splits["test"][0] == {"text": "hi;there", "label": "p"}


def test_quotes_false_keeps_stray_quotes(tmp_path):
    (tmp_path / "p.tsv").write_text('a\tb\ts\n"so" he said\tit is "x\t1\n', encoding="utf-8")
    rows = _read(tmp_path, _sts(splits={"test": "p.tsv"}, quotes=False)).splits["test"]
    assert rows == [{"sentence1": '"so" he said', "sentence2": 'it is "x', "score": 1.0}]


def test_files_list_and_glob_concatenate_in_order(tmp_path):
    for i in range(3):
        rows = [[f"{p} {i}", "cat" if "cat" in p else "dog"] for p in PETS]
        if i == 1:  # another column order: each file's own header is read
            rows = [["l", "t"]] + [r[::-1] for r in rows]
        else:
            rows = [["t", "l"], *rows]
        _write_csv(tmp_path / f"shards/part-{i}.csv", rows)
    listed = {"train": ["shards/part-2.csv", "shards/part-0.csv"], "test": "shards/part-1.csv"}
    task = _read(tmp_path, _cls(splits=listed))
    assert [r["text"][-1] for r in task.splits["train"]] == list("22220000")
    assert task.splits["test"][0] == {"text": "the cat sat 1", "label": "cat"}
    globbed = {"train": "shards/part-*.csv", "test": ["shards/part-[12].csv", "shards/part-0.csv"]}
    task = _read(tmp_path, _cls(splits=globbed))
    assert [r["text"][-1] for r in task.splits["train"]] == list("000011112222")
    assert [r["text"][-1] for r in task.splits["test"]] == list("111122220000")
    missing = {"train": "shards/x-*.csv", "test": "shards/part-0.csv"}
    with pytest.raises(SpecError, match="no file matches 'shards/x-\\*.csv'") as err:
        _read(tmp_path, _cls(splits=missing))
    assert err.value.field == "splits.train"


def test_line_files_sts_and_classification(tmp_path):
    _lines(tmp_path / "sick/test/a.txt", ["a cat", "a dog", "", "a bird"])
    _lines(tmp_path / "sick/test/b.txt", ["the cat", "the dog", "x", "the bird"])
    _lines(tmp_path / "sick/test/scores.txt", ["4.5", " ", "1", "2"])
    spec = _sts(format="line_files", splits={"test": "sick/test"})
    spec["columns"] = {"sentence1": "a.txt", "sentence2": "b.txt", "score": "scores.txt"}
    task = _read(tmp_path, spec)
    assert task.splits["test"] == [
        {"sentence1": "a cat", "sentence2": "the cat", "score": 4.5},
        {"sentence1": "a bird", "sentence2": "the bird", "score": 2.0},
    ]
    assert task.skipped["test"] == {"empty score": 1, "empty sentence1": 1}
    assert (
        task.summary()
        == "test 2 pairs = 4 texts, 2 rows skipped (1 empty score, 1 empty sentence1)"
    )

    for split in ("train", "test"):
        _lines(tmp_path / f"emo/{split}/text.txt", PETS)
        _lines(tmp_path / f"emo/{split}/labels.txt", ["0", "1", "0", "1"])
    cls = _cls(format="line_files", splits={"train": "emo/train", "test": "emo/test"})
    cls["columns"] = {"text": "text.txt", "label": "labels.txt"}
    assert _read(tmp_path, cls).splits["train"][1] == {"text": "a dog ran", "label": "1"}
    _lines(tmp_path / "emo/all/text.txt", ["TEXT", *PETS])  # a header line in every file
    _lines(tmp_path / "emo/all/labels.txt", ["LABEL", "0", "1", "2", "1"])
    cls["splits"] = {"train": "emo/all", "test": "emo/all"}
    task = _read(tmp_path, {**cls, "header": True, "where": {"label": [0, 1]}})  # where: a role
    assert [r["label"] for r in task.splits["test"]] == ["0", "1", "1"]
    assert task.summary() == (
        "train 3 texts, 1 row filtered out (where); test 3 texts, 1 row filtered out (where)"
    )
    with pytest.raises(SpecError, match="line_files: not a role") as err:
        _read(tmp_path, {**cls, "where": {"lang": "en"}})
    assert err.value.field == "where.lang"


def test_line_files_of_different_lengths_or_missing(tmp_path):
    _lines(tmp_path / "bad/a.txt", ["x", "y", "z"])
    _lines(tmp_path / "bad/b.txt", ["x", "y"])
    _lines(tmp_path / "bad/s.txt", ["1", "2", "3"])
    spec = _sts(format="line_files", splits={"test": "bad"})
    spec["columns"] = {"sentence1": "a.txt", "sentence2": "b.txt", "score": "s.txt"}
    with pytest.raises(SpecError, match="line files differ in length") as err:
        _read(tmp_path, spec)
    assert err.value.field == "splits.test"
    assert "a.txt: 3" in err.value.problem and "b.txt: 2" in err.value.problem
    spec["columns"]["score"] = "scores.txt"
    with pytest.raises(SpecError, match="file not found") as err:
        _read(tmp_path, spec)
    assert err.value.field == "columns.score"


def test_empty_scores_and_labels_are_skipped_and_counted(tmp_path):
    _write_csv(
        tmp_path / "s.csv",
        [["a", "b", "s"], ["x", "y", "1"], ["x", "z", ""], ["q", "r", " "], ["", "r", "2"]],
    )
    task = _read(tmp_path, _sts(splits={"test": "s.csv"}))
    assert task.sizes() == {"test": 1}
    assert (
        task.summary() == "test 1 pair = 2 texts, 3 rows skipped (2 empty score, 1 empty sentence1)"
    )
    _write_csv(
        tmp_path / "c.csv",
        [["t", "l"], *[[p, str(i % 2)] for i, p in enumerate(PETS)], ["no label", ""], ["", "1"]],
    )
    task = _read(tmp_path, _cls(splits={"train": "c.csv", "test": "c.csv"}))
    assert task.skipped["train"] == {"empty label": 1, "empty text": 1}
    assert "train 4 texts, 2 rows skipped (1 empty label, 1 empty text)" in task.summary()
    _write_csv(tmp_path / "none.csv", [["a", "b", "s"], ["x", "y", ""]])
    with pytest.raises(SpecError, match=r"has no rows, 1 row skipped \(empty score\)") as err:
        _read(tmp_path, _sts(splits={"test": "none.csv"}))
    assert err.value.field == "splits.test"


def test_label_map(tmp_path):
    _write_csv(tmp_path / "c.csv", [["t", "l"], *[[p, str(i % 3)] for i, p in enumerate(PETS)]])
    spec = _cls(
        splits={"train": "c.csv", "test": "c.csv"}, label_map={0: "sadness", 1: "joy", 2: "love"}
    )
    assert [r["label"] for r in _read(tmp_path, spec).splits["test"]] == [
        "sadness",
        "joy",
        "love",
        "sadness",
    ]
    spec["label_map"] = {0: "sadness", 1: "joy"}
    with pytest.raises(SpecError, match="label '2' is not mapped") as err:
        _read(tmp_path, spec)
    assert err.value.field == "label_map"
    _write_csv(tmp_path / "p.csv", [["s1", "s2", "d"], ["a", "b", "dup"], ["a", "c", "diff"]])
    pair = {
        "name": "P",
        "type": "pair_classification",
        "splits": {"test": "p.csv"},
        "columns": {"sentence1": "s1", "sentence2": "s2", "label": "d"},
        "label_map": {"dup": 1, "diff": 0},
    }
    assert [r["label"] for r in _read(tmp_path, pair).splits["test"]] == [1, 0]


def test_where_filters_rows_and_counts_them(tmp_path):
    rows = [
        [p, str(i // 2 % 2), "en" if i < 4 else "de", "train" if i % 2 else "test"]
        for i, p in enumerate(PETS * 2)
    ]
    _write_csv(tmp_path / "all.csv", [["t", "l", "lang", "split"], *rows])
    train = {"file": "all.csv", "where": {"split": ["train", "dev"], "lang": "en"}}
    task = _read(tmp_path, _cls(where={"lang": "en"}, splits={"train": train, "test": "all.csv"}))
    assert [r["text"] for r in task.splits["train"]] == ["a dog ran", "a dog barked"]
    assert task.sizes() == {"train": 2, "test": 4}
    assert task.summary() == (
        "train 2 texts, 6 rows filtered out (where); test 4 texts, 4 rows filtered out (where)"
    )
    by_index = {"file": "all.csv", "where": {2: "de"}}  # column 2 of the file
    by_role = {"file": "all.csv", "where": {"label": [1, "x"]}}  # the role's column, "l"
    task = _read(tmp_path, _cls(splits={"train": by_index, "test": by_role}))
    assert [r["text"] for r in task.splits["train"]] == PETS
    assert {r["label"] for r in task.splits["test"]} == {"1"} and task.sizes()["test"] == 4
    bad = _cls(splits={"train": "all.csv", "test": "all.csv"}, where={"language": "en"})
    with pytest.raises(SpecError, match="column 'language' not in") as err:
        _read(tmp_path, bad)
    assert err.value.field == "where.language"


def test_train_sample_is_seeded_and_ordered(tmp_path):
    rows = [[f"text {i}", f"c{i % 5}"] for i in range(500)]
    _write_csv(tmp_path / "big.csv", [["t", "l"], *rows])
    spec = _cls(splits={"train": "big.csv", "test": "big.csv"}, train_sample={"n": 50, "seed": 3})
    first, again = (_read(tmp_path, spec).splits["train"] for _ in range(2))
    other = _read(tmp_path, {**spec, "train_sample": {"n": 50, "seed": 4}}).splits["train"]
    assert len(first) == 50 and first == again and first != other
    order = [int(r["text"].split()[1]) for r in first]
    assert order == sorted(order)
    task = _read(tmp_path, spec)
    assert task.sizes() == {"train": 50, "test": 500}
    assert task.summary() == "train 50 of 500 texts; test 500 texts"
    assert _read(tmp_path, spec, limit=4).sizes() == {"train": 50, "test": 4}


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"filter": {"lang": "en"}}, "filter", "unknown key"),
        ({"label_map": {0: "x"}}, "label_map", "no label column"),
        ({"train_sample": 10}, "train_sample", "classification"),
        ({"where": {"lang": {"en": 1}}}, "where.lang", "a value or a list"),
        (
            {"format": "line_files", "columns": {"sentence1": 0, "sentence2": "b", "score": "s"}},
            "columns.sentence1",
            "file name",
        ),
        ({"splits": {"test": []}}, "splits.test.file", "is required"),
    ],
)
def test_bad_new_keys_name_the_field(extra, field, words):
    with pytest.raises(SpecError, match=words) as err:
        parse_spec({**_sts(splits={"test": "x.csv"}), **extra}, "bad.yaml")
    assert err.value.field == field and "bad.yaml" in str(err.value)


def test_label_map_missing_label_fails_before_a_model_loads(tmp_path, monkeypatch):
    from .test_specs import _expect

    rows = [[p, str(i % 2)] for i, p in enumerate(PETS)]
    _write_csv(tmp_path / "data/c.csv", [["t", "l"], *rows])
    spec = _cls(splits={"train": "c.csv", "test": "c.csv"}, label_map={0: "a"})
    _expect(tmp_path, tmp_path / "data", monkeypatch, spec, "label_map", "label '1' is not mapped")
