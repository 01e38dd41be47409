"""The RAG chat prompt: the question first, then numbered sources, then the instruction (and,
by default, the question again), and what is read back from an answer: the [n] it cites.

The question comes first on purpose: the generation prompt then starts with
``<chat header><question>``, the same tokens the query embedding reads (``reuse.py``), so the
key/value states computed for the embedding are reused by generation. It is asked again after
the sources so that a small model reads it last, right before it answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemlm.model import GEMModel

CITE_INSTRUCTION = (
    "Answer in one or two sentences, using only the sources above. Cite the sources you use, "
    "like [1]. If they lack the answer, say so."
)
# an answer ends at a blank line, or where the model starts a new question or sources block
ANSWER_STOP = ("\n\n", "\nQuestion:", "\nSources:")
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
SHORT_INSTRUCTION = (
    "Answer the question using the sources above. Reply with only the answer, a few words "
    "copied from the sources, without explanation."
)
NO_CONTEXT_INSTRUCTION = "Reply with only the answer, a few words, without explanation."
QUESTION_MARK = "\x00QUESTION_END\x00"


def format_source(i: int, payload: dict[str, Any]) -> str:
    title = payload.get("title") or ""
    head = f"[{i}] ({title}) " if title else f"[{i}] "
    return head + str(payload.get("text", "")).strip()


def user_message(
    question: str,
    sources: Sequence[dict[str, Any]],
    instruction: str | None = None,
    *,
    repeat_question: bool = False,
) -> str:
    """The user turn: question, blank line, numbered sources [1]..[k], instruction, and with
    ``repeat_question`` the question again (``Question: ...``) after them."""
    if not sources:
        return f"{question}\n\n{instruction or NO_CONTEXT_INSTRUCTION}"
    body = "\n\n".join(format_source(i, s) for i, s in enumerate(sources, 1))
    text = f"{question}\n\nSources:\n{body}\n\n{instruction or CITE_INSTRUCTION}"
    return text + f"\n\nQuestion: {question}" if repeat_question else text


def messages_for(
    question: str,
    sources: Sequence[dict[str, Any]],
    instruction: str | None = None,
    *,
    repeat_question: bool = False,
) -> list[dict[str, str]]:
    content = user_message(question, sources, instruction, repeat_question=repeat_question)
    return [{"role": "user", "content": content}]


def cited_numbers(answer: str, sources: int) -> list[int]:
    """The source numbers (1..``sources``) an answer cites as ``[n]`` or ``[n, m]``, in order.

    >>> cited_numbers("Paris [2]. Also Lyon [1, 2] and [7].", 3)
    [1, 2]
    """
    found = {int(n) for group in _CITATION.findall(answer) for n in group.split(",")}
    return sorted(n for n in found if 1 <= n <= sources)


def strip_citations(answer: str) -> str:
    """The answer without its ``[n]`` citations (to score it against plain gold answers).

    >>> strip_citations("Paris [1], in France [1, 2].")
    'Paris, in France.'
    """
    return re.sub(r"\s*" + _CITATION.pattern, "", answer).strip()


def chat_header(model: GEMModel) -> str:
    """The rendered chat prompt up to where the user's text starts (system prompt included).

    Found by rendering a user turn holding a marker and cutting at it, so it works for any chat
    template that puts the user text verbatim into the prompt.
    """
    rendered = model.chat_prompt([{"role": "user", "content": QUESTION_MARK}])
    cut = rendered.find(QUESTION_MARK)
    if cut < 0:
        raise ValueError("the chat template does not copy the user message verbatim")
    return rendered[:cut]
