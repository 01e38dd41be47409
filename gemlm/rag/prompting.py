"""The RAG chat prompt: the question first, then numbered sources, then the instruction.

The question comes first on purpose: the generation prompt then starts with
``<chat header><question>``, the same tokens the query embedding reads (``reuse.py``), so the
key/value states computed for the embedding are reused by generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemlm.model import GEMModel

CITE_INSTRUCTION = (
    "Answer the question using only the sources above. Cite the sources you use with their "
    "numbers in brackets, like [1]. If the sources do not contain the answer, say so."
)
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
    question: str, sources: Sequence[dict[str, Any]], instruction: str | None = None
) -> str:
    """The user turn: question, blank line, numbered sources, instruction."""
    if not sources:
        return f"{question}\n\n{instruction or NO_CONTEXT_INSTRUCTION}"
    body = "\n\n".join(format_source(i, s) for i, s in enumerate(sources, 1))
    return f"{question}\n\nSources:\n{body}\n\n{instruction or CITE_INSTRUCTION}"


def messages_for(
    question: str, sources: Sequence[dict[str, Any]], instruction: str | None = None
) -> list[dict[str, str]]:
    return [{"role": "user", "content": user_message(question, sources, instruction)}]


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
