"""What a GEM model embeds: the one builder of its model input, for inference and training.

Torch-free (``GEMConfig`` derives it and loads without torch). An embedded text becomes

    BOS  prompt + text  [cut at the end]  readout_suffix  <|gem_0|> ... <|gem_k-1|>

The tokenizer adds its own special tokens (BOS) to ``prompt + text``, the prompt being the one of
the text's role; a text longer than ``max_length`` allows loses its end, never the tail (the
suffix tokens and the k GEM tokens). Token ids are taken as the text's own ids: never prompted,
never re-tokenized, only cut and given the tail.

``GEMModel.encode``, the server, RAG, the sentence-transformers export and training's row
builders and contrastive collator all build through :meth:`EmbeddingFormat.build`, so a trained
text and an embedded one are the same ids (tests/test_embedding_format.py);
``tools/front_contract.py`` fails ``make lint`` on a second builder.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

Input = str | Sequence[int]  # a text, or token ids that are already the text's (no tail)
UNCUT = sys.maxsize  # a ``room`` that cuts nothing (training's collator: rows are cut already)


class Built(NamedTuple):
    """Model inputs of a batch, from :meth:`EmbeddingFormat.build`."""

    ids: list[list[int]]  # each input's ids: text (cut to the room), then the tail
    lengths: list[int]  # tokens each input needs before any cut (text + tail)
    tail: int  # the last ``tail`` ids of every row: readout suffix + specials, never cut
    specials: int  # k: the GEM tokens that end the tail

    @property
    def cut(self) -> int:
        """How many inputs lost the end of their text.

        >>> attach_tail([[5, 6, 7], [8]], [], [99], room=2).cut
        1
        """
        return sum(n > len(x) for n, x in zip(self.lengths, self.ids, strict=True))


Tokenize = Callable[[Sequence[Input]], Built]  # a format's build bound to a tokenizer and role


def attach_tail(
    seqs: Sequence[Sequence[int]], suffix_ids: list[int], special_ids: list[int], room: int = UNCUT
) -> Built:
    """Each id list cut to ``room`` tokens, then the suffix and the specials (never cut).

    >>> attach_tail([[5, 6, 7, 8]], [7], [99], room=2).ids
    [[5, 6, 7, 99]]
    """
    tail = list(suffix_ids) + list(special_ids)
    ids = [list(s[:room]) + tail for s in seqs]
    return Built(ids, [len(s) + len(tail) for s in seqs], len(tail), len(special_ids))


def ids_tokenizer(suffix_ids: list[int], special_ids: list[int]) -> Tokenize:
    """A :data:`Tokenize` over token ids whose tail is given as ids (no cut): a collator built
    without a tokenizer (tests, benchmarks) finishes its rows with it."""
    return partial(attach_tail, suffix_ids=list(suffix_ids), special_ids=list(special_ids))


@dataclass(frozen=True)
class EmbeddingFormat:
    """Prompts by role, BOS, the cut that keeps the tail, the readout suffix, the GEM tokens.

    >>> fmt = EmbeddingFormat(prompts={"query": "q: "}, default_prompt_name="query")
    >>> fmt.prompt("document"), fmt.prompt("document", "x: ")
    ('q: ', 'x: ')
    """

    special_tokens: tuple[str, ...] = ()  # the k GEM tokens (ids come from the tokenizer)
    max_length: int = 512  # tokens per embedded text, the tail included
    prompts: Mapping[str, str] = field(default_factory=dict)  # role or name -> text before input
    default_prompt_name: str | None = None
    readout_suffix: str = ""  # fixed text between the (cut) text and the specials
    add_special_tokens: bool = True  # the tokenizer's own (BOS); off only for bare LM rows

    @classmethod
    def of_prompts(
        cls, document: str = "", query: str | None = None, *, add_special_tokens: bool = True
    ) -> EmbeddingFormat:
        """A format of prompts alone (no GEM tokens): ``document`` for every role, ``query``
        (default: the same) for queries; training's row builders given bare prompts use it."""
        prompts = {"document": document, "query": document if query is None else query}
        return cls(
            prompts=prompts, default_prompt_name="document", add_special_tokens=add_special_tokens
        )

    def validate(self) -> None:
        """ValueError if the window cannot hold the specials or the default prompt is unknown."""
        k = len(self.special_tokens)
        if self.max_length <= k:
            raise ValueError(
                f"max_length={self.max_length} leaves no room for text beside {k} special tokens"
            )
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(f"default_prompt_name {self.default_prompt_name!r} is not in prompts")

    # ------------------------------------------------------------------ prompts
    def prompt(
        self, name: str | None = None, given: str | None = None, strict: bool = False
    ) -> str:
        """The text put before each input text: ``given`` as is; else the prompt ``name``; else
        the default prompt; else "".

        A ``name`` the format has no prompt for falls back to the default (a role such as
        "query" or "document"), or with ``strict`` raises ValueError (sentence-transformers'
        ``prompt_name``).

        >>> fmt = EmbeddingFormat(prompts={"query": "q: "})
        >>> fmt.prompt("query"), fmt.prompt("document"), fmt.prompt()
        ('q: ', '', '')
        """
        if given is not None:
            return given
        if name and name not in self.prompts and not strict:
            name = None
        name = name or self.default_prompt_name
        if name is None:
            return ""
        if name not in self.prompts:
            raise ValueError(
                f"prompt_name {name!r} not in the model's prompts {sorted(self.prompts)}"
            )
        return self.prompts[name]

    def identity(self) -> dict[str, Any]:
        """What a RAG collection records of the format (as first stored: the raw document
        prompt), so vectors of two formats never mix."""
        return {
            "special_tokens": list(self.special_tokens),
            "document_prompt": self.prompts.get("document", ""),
            "readout_suffix": self.readout_suffix,
        }

    # ------------------------------------------------------------------ ids through a tokenizer
    def special_ids(self, tokenizer: Any) -> list[int]:
        """Token ids of the k GEM tokens."""
        return tokenizer.convert_tokens_to_ids(list(self.special_tokens))

    def suffix_ids(self, tokenizer: Any) -> list[int]:
        """``readout_suffix`` tokenized: fixed text between a text and the specials."""
        suffix = self.readout_suffix
        return tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix else []

    def tail_ids(self, tokenizer: Any) -> list[int]:
        """Ids appended after every embedded text, never cut: the suffix, then the k specials.
        The suffix lets an instruction end right before the specials, e.g. PromptEOL's
        ``" means in one word:"``."""
        return self.suffix_ids(tokenizer) + self.special_ids(tokenizer)

    def bos_ids(self, tokenizer: Any) -> list[int]:
        """What the tokenizer puts before every text (BOS), [] when it adds nothing."""
        probe = tokenizer("x", add_special_tokens=self.add_special_tokens)["input_ids"]
        bare = tokenizer("x", add_special_tokens=False)["input_ids"]
        return probe[: len(probe) - len(bare)]

    def head_length(
        self, tokenizer: Any, role: str | None = None, prompt: str | None = None
    ) -> int:
        """Tokens of BOS + the prompt of ``role`` (or ``prompt`` as given) tokenized alone: the
        head training never drops from a view nor trains as text."""
        text = self.prompt(role, prompt)
        return len(tokenizer(text, add_special_tokens=self.add_special_tokens)["input_ids"])

    def text_room(self, tokenizer: Any, role: str | None = None, prompt: str | None = None) -> int:
        """Text tokens that fit the window after the prompt (and BOS; one token when there is
        no prompt) and before the tail."""
        text = self.prompt(role, prompt)
        used = self.head_length(tokenizer, prompt=text) if text else 1
        return self.max_length - used - len(self.tail_ids(tokenizer))

    # ------------------------------------------------------------------ the builder
    def build(
        self,
        inputs: Sequence[Input],
        role: str | None = None,
        *,
        tokenizer: Any,
        prompt: str | None = None,
        room: int | None = None,
        tail: bool = True,
    ) -> Built:
        """Model input of each text or token-id list, and each one's length before any cut.

        A text becomes ``prompt + text`` (the prompt of ``role``, or ``prompt`` as given)
        tokenized with the tokenizer's own special tokens; token ids are taken as they are.
        Each keeps at most ``room`` tokens (default: what ``max_length`` leaves beside the tail;
        :data:`UNCUT` for none), then gets the tail; ``tail=False`` leaves it off (training's
        rows, which its collator finishes with this same builder).
        """
        seqs = self._text_ids(inputs, self.prompt(role, prompt), tokenizer)
        suffix, specials = self.suffix_ids(tokenizer), self.special_ids(tokenizer)
        if room is None:
            room = self._room(len(suffix) + len(specials))
        if not tail:
            suffix = specials = []
        return attach_tail(seqs, suffix, specials, room)

    def tokenize_fn(
        self,
        tokenizer: Any,
        role: str | None = None,
        *,
        room: int | None = None,
        tail: bool = True,
    ) -> Tokenize:
        """:meth:`build` bound to a tokenizer and role: what training's collator takes (the way
        sentence-transformers' collator takes ``model.tokenize``)."""
        return partial(self.build, role=role, tokenizer=tokenizer, room=room, tail=tail)

    def _text_ids(self, inputs: Sequence[Input], prompt: str, tokenizer: Any) -> list[list[int]]:
        """``prompt + text`` tokenized (BOS included) per text, token ids as given, in order."""
        texts = [prompt + x for x in inputs if isinstance(x, str)]
        options = {"add_special_tokens": self.add_special_tokens, "verbose": False}
        encoded = iter(tokenizer(texts, **options)["input_ids"] if texts else [])
        return [next(encoded) if isinstance(x, str) else list(x) for x in inputs]

    def _room(self, tail: int) -> int:
        """Text tokens ``max_length`` leaves beside a tail of ``tail`` tokens."""
        if self.max_length < tail:
            raise ValueError(f"max_length {self.max_length} cannot hold {tail} special tokens")
        return self.max_length - tail
