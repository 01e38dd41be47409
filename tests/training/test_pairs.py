"""Self-supervised positive pairs: per-document sources, mixing, WikiExtractor documents."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import datasets
import pytest

from gemlm.corpus import load_documents, wiki_documents
from gemlm.training.pairs import (
    ASYMMETRIC,
    PAIR_SOURCES,
    crop_pair,
    dropout_pair,
    ict_pair,
    make_pairs,
    split_sentences,
    title_pair,
)

SEEDS = range(200)


def sentence(doc: int, par: int, k: int) -> str:
    return f"Article {doc} paragraph {par} sentence {k} describes topic number {doc * 7 + k}."


def paragraphs(doc: int, n_par: int = 3, n_sent: int = 3) -> list[str]:
    return [" ".join(sentence(doc, p, k) for k in range(n_sent)) for p in range(n_par)]


def corpus(n_docs: int, titled: bool = True) -> datasets.Dataset:
    titles = [f"Title number {i}" if titled else "" for i in range(n_docs)]
    return datasets.Dataset.from_dict(
        {"title": titles, "paragraphs": [paragraphs(i) for i in range(n_docs)]}
    )


def wiki_doc(doc_id: int, title: str, *body: str) -> str:
    lines = [f'<doc id="{doc_id}" url="?curid={doc_id}" title="{title}">', title, "", *body]
    return "\n".join([*lines, "", "</doc>", ""])


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


DOC = ("Cable & Wireless", paragraphs(1, n_par=4))
ALL = dict.fromkeys(PAIR_SOURCES, 1.0)


# --------------------------------------------------------------------------- documents


def test_wiki_documents_titles_and_paragraphs(tmp_path: Path) -> None:
    text = (
        wiki_doc(1, "Cable &amp; Wireless", "History.", *paragraphs(1, n_par=2))
        + wiki_doc(2, "Redirect stub")
        + wiki_doc(3, "Beta", paragraphs(3, n_par=1)[0], "too short to keep")
    )
    path = write(tmp_path / "AA" / "wiki_00", text)
    assert list(wiki_documents(path, min_words=8)) == [
        ("Cable & Wireless", paragraphs(1, n_par=2)),
        ("Redirect stub", []),
        ("Beta", paragraphs(3, n_par=1)),
    ]
    unfiltered = [body for _, body in wiki_documents(path, min_words=0)]  # title lines skipped
    assert unfiltered[0] == ["History.", *paragraphs(1, n_par=2)]
    assert unfiltered[2][-1] == "too short to keep"
    docs = load_documents(tmp_path)  # the folder; the stub is skipped
    assert docs.column_names == ["title", "paragraphs"]
    assert docs["title"][:] == ["Cable & Wireless", "Beta"]
    assert docs["paragraphs"][:] == [paragraphs(1, n_par=2), paragraphs(3, n_par=1)]


def test_load_documents_of_plain_text_and_missing_paths(tmp_path: Path) -> None:
    lines = paragraphs(5, n_par=2)
    path = write(tmp_path / "corpus.txt", "\n".join([*lines, "short line"]) + "\n")
    docs = load_documents(path)
    assert docs["title"][:] == ["", ""] and docs["paragraphs"][:] == [[line] for line in lines]
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        load_documents(tmp_path / "nowhere.txt")


# --------------------------------------------------------------------------- sources


def test_split_sentences_keeps_abbreviations_before_lowercase() -> None:
    text = "It was built c. 1900 by J. Smith. Later it burned! (It was rebuilt.)"
    assert split_sentences(text) == [
        "It was built c. 1900 by J.",
        "Smith.",
        "Later it burned!",
        "(It was rebuilt.)",
    ]
    assert {"ict", "title"} == ASYMMETRIC < set(PAIR_SOURCES)


def test_dropout_pair_is_one_long_sentence_twice() -> None:
    all_sentences = {s for p in DOC[1] for s in split_sentences(p)}
    seen = set()
    for seed in SEEDS:
        query, positive = dropout_pair(DOC, random.Random(seed))
        assert query == positive and query in all_sentences
        seen.add(query)
    assert len(seen) > len(all_sentences) // 2  # random, not always the same sentence
    assert dropout_pair(("T", ["Too short. Also short."]), random.Random(0)) is None


def test_ict_query_is_one_sentence_and_absent_from_the_positive() -> None:
    doc = ("T", [*DOC[1], "Single sentence paragraphs cannot give an inverse cloze pair."])
    for seed in SEEDS:
        query, positive = ict_pair(doc, random.Random(seed), keep_prob=0.0)
        (paragraph,) = [p for p in doc[1] if query in split_sentences(p)]
        assert query not in positive
        assert positive == " ".join(s for s in split_sentences(paragraph) if s != query)
    kept = [ict_pair(doc, random.Random(s), keep_prob=1.0) for s in SEEDS]
    assert all(query in positive and positive in doc[1] for query, positive in kept)


def test_ict_needs_two_sentences_and_skips_repeated_ones() -> None:
    single = ("T", ["Only one sentence lives in this paragraph of the article."])
    assert ict_pair(single, random.Random(0)) is None
    repeated = sentence(0, 0, 0)
    doc = ("T", [f"{repeated} {sentence(0, 0, 1)} {repeated}"])
    for seed in SEEDS:
        query, positive = ict_pair(doc, random.Random(seed), keep_prob=0.0)
        assert query == sentence(0, 0, 1) and query not in positive


def test_title_pair_prefers_the_first_paragraph() -> None:
    firsts = 0
    for seed in SEEDS:
        query, positive = title_pair(DOC, random.Random(seed))
        assert query == "Cable & Wireless" and positive in DOC[1]
        firsts += positive == DOC[1][0]
    assert firsts > len(SEEDS) * 0.5  # first paragraph: 0.5 + 0.5 / 4 expected
    assert title_pair(("", DOC[1]), random.Random(0)) is None
    assert title_pair(("  ", DOC[1]), random.Random(0)) is None


def test_crop_spans_are_bounded_substrings_of_the_document() -> None:
    doc = ("T", paragraphs(2, n_par=10, n_sent=2))  # 200 words
    text = " ".join(" ".join(doc[1]).split())
    lengths = []
    for seed in SEEDS:
        pair = crop_pair(doc, random.Random(seed), min_ratio=0.1, max_ratio=0.3, max_words=50)
        for span in pair:
            assert span in text
            lengths.append(len(span.split()))
    assert min(lengths) >= 20 and max(lengths) == 50  # 10-30% of 200 words, at most 50
    assert len(set(lengths)) > 10
    few = ("T", ["One two three four five six seven eight nine ten."])
    assert all(len(s.split()) == 8 for s in crop_pair(few, random.Random(0)))
    assert crop_pair(("T", ["Seven words are not enough for this."]), random.Random(0)) is None


# --------------------------------------------------------------------------- mixing


def test_make_pairs_columns_and_mix_weights() -> None:
    pairs = make_pairs(corpus(1000), {"dropout": 2, "ict": 1, "title": 0.5, "crop": 0.5}, 1200)
    assert pairs.column_names == ["query", "positive", "source", "doc"] and len(pairs) == 1200
    share = {k: v / 1200 for k, v in Counter(pairs["source"]).items()}
    expected = {"dropout": 0.5, "ict": 0.25, "title": 0.125, "crop": 0.125}
    assert share == pytest.approx(expected, abs=0.05)
    for row in pairs.select(range(100)):
        if row["source"] == "title":
            assert row["query"].startswith("Title number ")
        if row["source"] == "dropout":
            assert row["query"] == row["positive"]


def test_make_pairs_is_deterministic_with_unique_queries() -> None:
    docs = corpus(300)
    first = make_pairs(docs, ALL, 500, seed=7).to_dict()
    assert make_pairs(docs, ALL, 500, seed=7).to_dict() == first
    assert make_pairs(docs, ALL, 500, seed=8).to_dict() != first
    assert len(set(first["query"])) == 500


def test_make_pairs_uses_every_title_once_then_gives_up() -> None:
    docs = corpus(20)
    pairs = make_pairs(docs, {"title": 1}, 20)
    assert sorted(pairs["query"]) == sorted(docs["title"])
    with pytest.raises(ValueError, match="made only 20 of 21 pairs"):
        make_pairs(docs, {"title": 1}, 21)


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ({"ict": 1, "bm25": 1, "cloze": 2}, r"unknown pair sources \['bm25', 'cloze'\]"),
        ({"ict": 1, "crop": 0, "title": -1}, "positive.*'crop': 0.*'title': -1"),
        ({}, "empty mix"),
        ({"dropout": 1, "title": 1}, "no document has a title"),
    ],
)
def test_make_pairs_rejects_bad_mixes(mix: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_pairs(corpus(5, titled=False), mix, 10)


def test_make_pairs_needs_document_columns() -> None:
    with pytest.raises(ValueError, match="'title' and 'paragraphs'"):
        make_pairs(datasets.Dataset.from_dict({"text": ["a b c"]}), ALL, 1)


def test_tokenize_pairs_gives_queries_of_asymmetric_sources_the_query_prompt(tokenizer) -> None:
    from gemlm.training.pairs import tokenize_pairs

    pairs = datasets.Dataset.from_dict(
        {
            "query": ["the cat sat", "the dog sat"],
            "positive": ["the cat sat on the mat", "the dog sat on the rug"],
            "source": ["ict", "crop"],
        }
    )
    rows = tokenize_pairs(pairs, tokenizer, 64, 4, prompt="doc: ", query_prompt="q: ")
    enc = lambda t: tokenizer(t, add_special_tokens=True)["input_ids"]  # noqa: E731
    assert rows["input_ids"] == [enc("q: the cat sat"), enc("doc: the dog sat")]
    assert rows["positive_ids"] == [enc("doc: the cat sat on the mat")[:4]] + [
        enc("doc: the dog sat on the rug")[:4]
    ]
    assert rows["protect"] == [len(enc("q: ")), len(enc("doc: "))]


def test_clean_markup_in_pairs() -> None:
    text = "Cable &amp; Wireless grew fast in the early years of radio.&lt;ref&gt;x&lt;/ref&gt;"
    docs = datasets.Dataset.from_dict({"title": ["A"], "paragraphs": [[text]]})
    pairs = make_pairs(docs, {"dropout": 1.0}, 1)
    assert pairs["query"] == ["Cable & Wireless grew fast in the early years of radio."]
