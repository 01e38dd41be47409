"""Self-supervised (query, positive) pairs for the contrastive stage, cut from whole documents.

Documents are ``(title, paragraphs)`` rows as :func:`gemlm.corpus.load_documents`
returns them. Four sources (Contriever / ICT style, no labels needed):

* ``dropout``: one sentence twice; the collator applies token dropout to the positive.
* ``ict``: inverse cloze task: a sentence and the rest of its paragraph (asymmetric).
* ``title``: the article title and one of its paragraphs (asymmetric).
* ``crop``: two independently cropped word spans of the same document.

Each ``*_pair`` function is pure: given a document and a :class:`random.Random` it returns
``(query, positive)`` or None when the document cannot give that kind of pair.
:func:`make_pairs` mixes the sources into a Dataset. Texts stay plain strings until
:func:`tokenize_pairs` builds them with the model's embedding format.
"""

from __future__ import annotations

import html
import logging
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from typing import Any, NamedTuple

import datasets

from ..embedding_format import EmbeddingFormat
from .topics import Picker, random_picker, topic_groups, topic_picker

logger = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
REF_TAG = re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", re.DOTALL)
PAIR_SOURCES = ("dropout", "ict", "title", "crop")
ASYMMETRIC = frozenset({"ict", "title"})  # (query, document); the other sources are symmetric
RETRIES = 8  # other documents tried when the drawn one cannot give a new pair
PAIR_FEATURES = datasets.Features(
    {
        **{name: datasets.Value("string") for name in ("query", "positive", "source")},
        "doc": datasets.Value("int64"),  # the document's row: pairs of one document are related
    }
)

Pair = tuple[str, str]


class Document(NamedTuple):
    """A title ("" when unknown) and its paragraphs, in order; a plain 2-tuple works too."""

    title: str
    paragraphs: Sequence[str]


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after ``.!?`` + whitespace before a capital, quote or "(".

    >>> split_sentences("It rains. Dr. Who (born 1963) left! 'Why?' he asked.  e.g. this")
    ['It rains.', 'Dr.', 'Who (born 1963) left!', "'Why?' he asked.  e.g. this"]
    """
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def clean_markup(text: str) -> str:
    """Undo what WikiExtractor leaves in body text: HTML entities and escaped ``<ref>`` tags.

    >>> clean_markup("Cable &amp; Wireless&lt;ref name=a&gt;x&lt;/ref&gt; grew.")
    'Cable & Wireless grew.'
    """
    return REF_TAG.sub("", html.unescape(text))


def _n_words(text: str) -> int:
    return len(text.split())


def _shuffled(rng: random.Random, n: int) -> list[int]:
    return rng.sample(range(n), n)


# --------------------------------------------------------------------------- per document


def dropout_pair(doc: Document, rng: random.Random, min_words: int = 8) -> Pair | None:
    """``(s, s)`` for a random sentence ``s`` of at least ``min_words`` words.

    >>> dropout_pair(("T", ["Short one. A sentence with exactly six words."]), random.Random(0), 6)
    ('A sentence with exactly six words.', 'A sentence with exactly six words.')
    """
    paragraphs = doc[1]
    for p in _shuffled(rng, len(paragraphs)):
        sentences = [s for s in split_sentences(paragraphs[p]) if _n_words(s) >= min_words]
        if sentences:
            sentence = rng.choice(sentences)
            return sentence, sentence
    return None


def ict_pair(
    doc: Document, rng: random.Random, keep_prob: float = 0.1, min_words: int = 8
) -> Pair | None:
    """Inverse cloze (Lee et al. 2019): a sentence of a paragraph, and the paragraph without it.

    Query and rest both need ``min_words`` words. With probability ``keep_prob`` the positive is
    the whole paragraph (query left in). With ``keep_prob=0`` the query never occurs in the
    positive: sentences that are repeated elsewhere in their paragraph are not used as queries.

    >>> ict_pair(("T", ["One two three. Four five six."]), random.Random(1), 0.0, 3)
    ('One two three.', 'Four five six.')
    """
    paragraphs = doc[1]
    for p in _shuffled(rng, len(paragraphs)):
        sentences = split_sentences(paragraphs[p])
        if len(sentences) < 2:
            continue
        for i in _shuffled(rng, len(sentences)):
            query = sentences[i]
            rest = " ".join(sentences[:i] + sentences[i + 1 :])
            if _n_words(query) >= min_words and _n_words(rest) >= min_words and query not in rest:
                keep = rng.random() < keep_prob
                return query, (paragraphs[p] if keep else rest)
    return None


def title_pair(
    doc: Document, rng: random.Random, first_prob: float = 0.5, min_words: int = 8
) -> Pair | None:
    """``(title, paragraph)``: the first paragraph with probability ``first_prob``, else any.

    Only paragraphs of at least ``min_words`` words count; None without a title.

    >>> title_pair(("Paris", ["Paris is the capital of France."]), random.Random(0), min_words=3)
    ('Paris', 'Paris is the capital of France.')
    """
    title, paragraphs = doc[0].strip(), [p for p in doc[1] if _n_words(p) >= min_words]
    if not title or not paragraphs:
        return None
    first = rng.random() < first_prob
    return title, (paragraphs[0] if first else rng.choice(paragraphs))


def crop_pair(
    doc: Document,
    rng: random.Random,
    min_ratio: float = 0.1,
    max_ratio: float = 0.5,
    max_words: int = 96,
    min_words: int = 8,
) -> Pair | None:
    """Two word spans cropped independently (Contriever) from the doc's joined paragraphs.

    Each span covers a ratio in ``[min_ratio, max_ratio]`` of the document's words, clamped to
    ``[min_words, max_words]`` words (and to the document); None under ``min_words`` words.

    >>> doc = ("T", ["w0 w1 w2 w3 w4", "w5 w6 w7 w8 w9"])
    >>> crop_pair(doc, random.Random(0), 0.3, 0.3, min_words=2)
    ('w6 w7 w8', 'w7 w8 w9')
    """
    if not 0 < min_ratio <= max_ratio <= 1:
        raise ValueError(f"need 0 < min_ratio <= max_ratio <= 1, got {min_ratio}, {max_ratio}")
    if max_words < min_words:
        raise ValueError(f"max_words={max_words} is below min_words={min_words}")
    words = " ".join(doc[1]).split()
    if len(words) < min_words:
        return None

    def span() -> str:
        size = round(rng.uniform(min_ratio, max_ratio) * len(words))
        size = max(min_words, min(size, max_words, len(words)))
        start = rng.randint(0, len(words) - size)
        return " ".join(words[start : start + size])

    return span(), span()


# --------------------------------------------------------------------------- mixing


def make_pairs(
    docs: datasets.Dataset,
    mix: Mapping[str, float],
    n_pairs: int,
    seed: int = 0,
    min_words: int = 8,
    ict_keep: float = 0.1,
    topic_batch: int = 0,
    n_topics: int | None = None,
) -> datasets.Dataset:
    """``n_pairs`` rows of ``query``, ``positive``, ``source`` and ``doc`` (the row of ``docs``
    the pair was cut from), sources drawn by ``mix``.

    ``mix`` maps source names of :data:`PAIR_SOURCES` to positive weights (normalised). Each
    pair draws a source, then a random document; when it cannot give that pair, or its query
    was already emitted, up to ``RETRIES`` other documents are tried before the source is drawn
    again. Queries are unique within one call. The result depends only on the arguments.
    The ``title`` and ``paragraphs`` columns of ``docs`` are read into memory.

    ``topic_batch`` B > 0: each block of B consecutive pairs is drawn from one cluster of
    related documents (``n_topics`` clusters, default one per 4B documents;
    :mod:`gemlm.training.topics`), to be batched in this order.
    """
    weights = check_mix(mix)
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1, got {n_pairs}")
    missing = {"title", "paragraphs"} - set(docs.column_names)
    if missing or len(docs) == 0:
        raise ValueError(
            "docs must be a non-empty Dataset with 'title' and 'paragraphs' columns "
            f"(see load_documents); got {len(docs)} rows, columns {docs.column_names}"
        )
    columns = docs.with_format(None)[:]
    rows = [
        (title, [clean_markup(p) for p in paragraphs])
        for title, paragraphs in zip(columns["title"], columns["paragraphs"], strict=True)
    ]
    if "title" in weights and not any(title.strip() for title, _ in rows):
        raise ValueError("mix asks for 'title' pairs but no document has a title")
    makers: dict[str, Callable[[Document, random.Random], Pair | None]] = {
        "dropout": lambda d, r: dropout_pair(d, r, min_words),
        "ict": lambda d, r: ict_pair(d, r, ict_keep, min_words),
        "title": lambda d, r: title_pair(d, r, min_words=min_words),
        "crop": lambda d, r: crop_pair(d, r, min_words=min_words),
    }
    pick = random_picker(len(rows))
    if topic_batch:
        n_groups = n_topics or max(1, len(rows) // (4 * topic_batch))
        groups = topic_groups(rows, min(n_groups, len(rows)), seed)
        logger.info("Topic batches of %d pairs from %d clusters", topic_batch, len(groups))
        pick = topic_picker(groups, len(rows), topic_batch)
    pairs, stats = _draw(rows, weights, makers, n_pairs, random.Random(seed), pick)
    _log_stats(stats, len(pairs))
    query, positive, source, doc = (list(col) for col in zip(*pairs, strict=True))
    return datasets.Dataset.from_dict(
        {"query": query, "positive": positive, "source": source, "doc": doc},
        features=PAIR_FEATURES,
    )


def check_mix(mix: Mapping[str, float]) -> dict[str, float]:
    """Normalised weights in :data:`PAIR_SOURCES` order; ValueError naming bad entries.

    >>> check_mix({"title": 1, "ict": 3})
    {'ict': 0.75, 'title': 0.25}
    """
    unknown = sorted(set(mix) - set(PAIR_SOURCES))
    if unknown:
        raise ValueError(f"unknown pair sources {unknown}; known: {', '.join(PAIR_SOURCES)}")
    bad = {k: w for k, w in mix.items() if not (isinstance(w, int | float) and 0 < w < math.inf)}
    if bad:
        raise ValueError(f"pair source weights must be positive numbers, got {bad}")
    if not mix:
        raise ValueError(f"empty mix: give a weight to some of {', '.join(PAIR_SOURCES)}")
    total = sum(mix.values())
    return {name: mix[name] / total for name in PAIR_SOURCES if name in mix}


def _draw(
    rows: list[tuple[str, list[str]]],
    weights: dict[str, float],
    makers: Mapping[str, Callable[[Document, random.Random], Pair | None]],
    n_pairs: int,
    rng: random.Random,
    pick: Picker,
) -> tuple[list[tuple[str, str, str, int]], Counter[tuple[str, str]]]:
    """(query, positive, source, document) rows and counts of (source, "pairs"/"retried"/"failed");
    ``pick`` chooses the document each try of pair i draws from."""
    names, cum = list(weights), list(accumulate(weights.values()))
    pairs: list[tuple[str, str, str, int]] = []
    seen: set[str] = set()
    stats: Counter[tuple[str, str]] = Counter()
    while len(pairs) < n_pairs:
        source = rng.choices(names, cum_weights=cum)[0]
        for attempt in range(1 + RETRIES):
            doc = pick(rng, len(pairs))
            pair = makers[source](rows[doc], rng)
            if pair is not None and pair[0] not in seen:
                seen.add(pair[0])
                pairs.append((pair[0], pair[1], source, doc))
                stats[source, "pairs"] += 1
                stats[source, "retried"] += attempt > 0
                break
        else:
            stats[source, "failed"] += 1
            failed = {s: stats[s, "failed"] for s in names if stats[s, "failed"]}
            if sum(failed.values()) > n_pairs:
                raise ValueError(
                    f"made only {len(pairs)} of {n_pairs} pairs from {len(rows)} documents: "
                    f"drawn sources found no new pair in {1 + RETRIES} documents {failed} "
                    "times; use more documents, fewer pairs or another mix"
                )
    return pairs, stats


def _log_stats(stats: Counter, made: int) -> None:
    parts = [
        f"{s} {stats[s, 'pairs']} ({stats[s, 'retried']} needed another doc, "
        f"{stats[s, 'failed']} draws failed)"
        for s in PAIR_SOURCES
        if stats[s, "pairs"] or stats[s, "failed"]
    ]
    logger.info("Made %d pairs: %s", made, "; ".join(parts))


# --------------------------------------------------------------------------- tokenizing


def tokenize_pairs(
    pairs: datasets.Dataset,
    tokenizer: Any,
    max_len: int,
    positive_max_len: int,
    prompt: str = "",
    query_prompt: str = "",
    fmt: EmbeddingFormat | None = None,
) -> datasets.Dataset:
    """Token ids for the contrastive collator: ``input_ids`` (the query, or the first text of
    a symmetric pair), ``positive_ids``, ``protect`` (the query's BOS + prompt length) and,
    when ``pairs`` has a ``negative`` column (:mod:`gemlm.training.negatives`),
    ``negative_ids``, built as a positive.

    Exactly what ``encode_query`` / ``encode_document`` feed the model, less the tail the
    collator appends: ``fmt.build`` of queries of :data:`ASYMMETRIC` sources as "query", of
    every other text as "document" (without ``fmt``, a format of ``prompt`` and
    ``query_prompt``). Pairs with a text under 2 tokens are dropped.
    """
    fmt = fmt or EmbeddingFormat.of_prompts(prompt, query_prompt)
    protect = {role: fmt.head_length(tokenizer, role) for role in ("query", "document")}

    def encode(batch: dict[str, list[str]]) -> dict[str, list]:
        roles = ["query" if s in ASYMMETRIC else "document" for s in batch["source"]]
        q_ids, q_lens = _build_by_role(fmt, tokenizer, batch["query"], roles, max_len)
        docs = fmt.build(
            batch["positive"], "document", tokenizer=tokenizer, room=positive_max_len, tail=False
        )
        negs = None
        if "negative" in batch:
            negs = fmt.build(
                batch["negative"],
                "document",
                tokenizer=tokenizer,
                room=positive_max_len,
                tail=False,
            )
        out: dict[str, list] = {"input_ids": [], "positive_ids": [], "protect": []}
        if negs is not None:
            out["negative_ids"] = []
        rows = zip(q_ids, q_lens, docs.ids, docs.lengths, roles, strict=True)
        for i, (q, q_len, d, d_len, role) in enumerate(rows):
            if q_len >= 2 and d_len >= 2 and (negs is None or negs.lengths[i] >= 2):
                out["input_ids"].append(q)
                out["positive_ids"].append(d)
                out["protect"].append(protect[role])
                if negs is not None:
                    out["negative_ids"].append(negs.ids[i])
        return out

    return pairs.map(
        encode, batched=True, remove_columns=pairs.column_names, desc="Tokenizing pairs"
    )


def _build_by_role(
    fmt: EmbeddingFormat, tokenizer: Any, texts: list[str], roles: list[str], room: int
) -> tuple[list[list[int]], list[int]]:
    """``fmt.build`` (no tail) of each text as its role, one call per role: ids and lengths."""
    ids: list[list[int]] = [[] for _ in texts]
    lengths = [0] * len(texts)
    for role in dict.fromkeys(roles):
        rows = [i for i, r in enumerate(roles) if r == role]
        built = fmt.build(
            [texts[i] for i in rows], role, tokenizer=tokenizer, room=room, tail=False
        )
        for i, x, n in zip(rows, built.ids, built.lengths, strict=True):
            ids[i], lengths[i] = x, n
    return ids, lengths
