"""Validation errors in plain words: the field checks the protocol models run, and how the first
error of a failed validation reads to a client.

Every message names the field and the index the way a client writes them (``input[3]``,
``messages[1].role``) in plain words, not Pydantic's union branches:
``input[3]: token ids must be non-negative integers; position 0 holds -1``. Nothing here knows
HTTP: ``handler.parse_body`` turns :func:`first_error` into the 400.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

INVALID = "invalid_value"  # the OpenAI error code of a request that does not validate


def kind(value: object) -> str:
    """A JSON value's type in words: 'a string', 'an integer', 'true' ..."""
    if isinstance(value, bool):
        return json.dumps(value)
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


def shown(value: object) -> str:
    return json.dumps(value)[:40] if isinstance(value, int | float | str) else kind(value)


def invalid(where: str | None, message: str, code: str = INVALID) -> PydanticCustomError:
    """A validation error in plain words; ``where`` (the client's path, e.g. ``input[3]``)
    overrides the location Pydantic knows, for errors found inside a field; ``code`` is the
    OpenAI error code the client gets."""
    ctx = {"message": message, "code": code} | ({"where": where} if where else {})
    return PydanticCustomError("gemlm", "{message}", ctx)


def _token_ids_problem(ids: list[Any], where: str) -> PydanticCustomError | None:
    for j, t in enumerate(ids):
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            return invalid(
                where,
                f"token ids must be non-negative integers; position {j} holds {shown(t)}",
            )
    return None


def check_inputs(value: Any, field: str) -> Any:
    """The four OpenAI input forms (a string, strings, token ids, token-id lists), or an error
    naming the item: ``input[3]: token ids must be non-negative integers; position 0 holds -1``.
    """
    if isinstance(value, str):
        return value
    forms = "a string, a list of strings, a list of token ids, or a list of token-id lists"
    if not isinstance(value, list):
        raise invalid(field, f"must be {forms}; got {kind(value)}")
    if not value:
        raise invalid(field, "must not be empty")
    first = value[0]
    if isinstance(first, str):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise invalid(
                    f"{field}[{i}]", f"expected a string like {field}[0]; got {kind(item)}"
                )
        return value
    if isinstance(first, list):
        for i, item in enumerate(value):
            where = f"{field}[{i}]"
            if not isinstance(item, list):
                raise invalid(
                    where, f"expected a list of token ids like {field}[0]; got {kind(item)}"
                )
            if problem := _token_ids_problem(item, where):
                raise problem
        return value
    if isinstance(first, int):
        if problem := _token_ids_problem(value, field):
            raise problem
        return value
    raise invalid(f"{field}[0]", f"expected a string or a list of token ids; got {kind(first)}")


def check_stop(value: Any) -> Any:
    """``stop``: a string or a list of strings."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise invalid("stop", f"must be a string or a list of strings; got {kind(value)}")
    for i, s in enumerate(value):
        if not isinstance(s, str):
            raise invalid(f"stop[{i}]", f"expected a string; got {kind(s)}")
    return value


_TYPE_TAGS = ("str", "int", "float", "bool", "list", "dict", "none")


def _where(loc: tuple[int | str, ...]) -> str:
    """Pydantic's error location as a client writes it: ``messages[1].role``; the names of
    union branches (``str``, ``list[str]``, ``function-after[...]``) are left out."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier() and not part[0].isupper() and part not in _TYPE_TAGS:
            out += f".{part}" if out else part
    return out


def first_error(exc: ValidationError) -> tuple[str, str | None, str]:
    """The first error of ``exc`` as ``(message, param, code)``: the message names the field
    and index in plain words, ``param`` is that field (``None``: the body as a whole)."""
    err = exc.errors(include_url=False)[0]
    ctx = err.get("ctx") or {}
    where = ctx.get("where") or _where(err["loc"])
    code = ctx.get("code", INVALID)
    message = err["msg"]
    if err["type"] == "missing":
        return f"{where} is required", where, code
    if err["type"] != "gemlm" and "input" in err:
        message += f" (got {shown(err['input'])})"
    return (f"{where}: {message}" if where else message), where or None, code
