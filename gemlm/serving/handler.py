"""What every endpoint's handler shares (vLLM's ``OpenAIServing``).

There is one handler class per endpoint, made per request by its route: ``ServingEmbedding``,
``ServingCompletion``, ``ServingChat``, ``ServingRag`` and ``ServingModels``. Each validates its
request once, in its ``validate``: the body is parsed into its protocol model (shape, types,
ranges: :func:`parse_body`), then checked against the model served and the server's limits
(:meth:`Handler.check_model`, :meth:`Handler.check_ids` ...). What needs the tokenizer (a
prompt's length against the context, the chat template, an input against the embedding window)
is checked where the tokens are made, on the model worker, by the same handler.

Responses are protocol models, rendered as the wire always was: ``JSONResponse`` of
``model_dump()``, or server-sent events ``data: {json}\\n\\n`` ending with ``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError

from .context import ServingContext, serving
from .errors import APIError
from .protocol import ErrorResponse
from .validation import first_error

M = TypeVar("M", bound=BaseModel)
DONE = "data: [DONE]\n\n"


async def parse_body(request: Request, model: type[M]) -> M:
    """Read, decode (strict UTF-8), parse and validate a JSON body; any failure is a 400."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, f"request body is not valid UTF-8: {exc}", code="invalid_body") from exc
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    if "\\u" in text or "\\U" in text:  # escapes may smuggle lone surrogates the tokenizer rejects
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise APIError(
                400,
                "request body holds an invalid unicode escape (lone surrogate)",
                code="invalid_body",
            ) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, param, code = first_error(exc)
        raise APIError(400, message, param=param, code=code) from exc


def sse(event: BaseModel, **dump: Any) -> str:
    """One server-sent event (``dump``: ``model_dump`` options, e.g. ``exclude``)."""
    return f"data: {json.dumps(event.model_dump(**dump), ensure_ascii=False)}\n\n"


def documented(
    response: type[BaseModel],
    *,
    request: type[BaseModel] | None = None,
    stream: tuple[type[BaseModel], ...] = (),
) -> dict[str, Any]:
    """Route options publishing the protocol models in the OpenAPI schema: the ``request``
    body, the ``response``, the events of a ``stream`` (and the in-band error), errors. The
    route returns ready responses, so FastAPI does not validate them a second time."""

    def ref(model: type[BaseModel]) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    responses: dict[int | str, dict[str, Any]] = {
        "default": {"model": ErrorResponse, "description": "An error in OpenAI's shape"}
    }
    if stream:
        events = {"oneOf": [ref(m) for m in (*stream, ErrorResponse)]}
        responses[200] = {
            "content": {"text/event-stream": {"schema": events}},
            "description": "JSON, or with stream: server-sent events, then data: [DONE]",
        }
    options: dict[str, Any] = {"response_model": response, "responses": responses}
    if request is not None:
        body = {"required": True, "content": {"application/json": {"schema": ref(request)}}}
        options["openapi_extra"] = {"requestBody": body}
    return options


class Handler:
    """One request's handler: the serving context and the checks against it."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.ctx: ServingContext = serving(request)

    async def parse(self, model: type[M]) -> M:
        return await parse_body(self.request, model)

    def check_model(self, name: str | None) -> None:
        """A request may omit ``model``; naming another one is a 404 as in the OpenAI API."""
        if name is not None and name != self.ctx.model_name:
            raise APIError(
                404,
                f"The model {name!r} does not exist; this server serves {self.ctx.model_name!r}",
                param="model",
                code="model_not_found",
            )

    def check_ids(self, ids: list[int], what: str) -> None:
        """Token ids (a prompt, an embedding input): not empty, within the input limit and the
        model's vocabulary."""
        limit = self.ctx.limits.max_input_tokens
        if not ids:
            raise APIError(400, f"{what} is empty", param=what, code="invalid_value")
        if len(ids) > limit:
            raise APIError(
                400,
                f"{what} has {len(ids)} tokens; the limit is {limit}",
                param=what,
                code="context_length_exceeded",
            )
        bad = next((t for t in ids if t >= self.ctx.vocab_size), None)
        if bad is not None:
            raise APIError(
                400,
                f"{what} holds token id {bad}, outside this model's vocabulary (size "
                f"{self.ctx.vocab_size}): were these ids made by another tokenizer?",
                param=what,
                code="invalid_value",
            )

    def check_output_tokens(self, value: int | None, param: str) -> None:
        limit = self.ctx.limits.max_output_tokens
        if value is not None and value > limit:
            raise APIError(400, f"{param}={value} exceeds the limit {limit}", param=param)

    def stamp(self, prefix: str) -> dict[str, Any]:
        """The head every generation response and event carries: id, created, model."""
        return {
            "id": f"{prefix}-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": self.ctx.model_name,
        }

    @staticmethod
    def respond(body: BaseModel) -> JSONResponse:
        return JSONResponse(body.model_dump())

    @staticmethod
    def stream(events: AsyncIterator[str]) -> StreamingResponse:
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @staticmethod
    def failure(exc: Exception) -> str:
        """The event for a failure after a stream's headers went out: reported in-band, as
        OpenAI-compatible servers do."""
        if not isinstance(exc, APIError):
            exc = APIError(500, f"generation failed: {type(exc).__name__}: {exc}")
        return sse(exc.body())
