"""Errors in the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``
(``protocol.ErrorResponse``).

Every failure the server reports, from a bad API key to an unexpected bug, leaves through here,
so clients (the ``openai`` SDK maps status codes to exception classes) always get this body.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .protocol import ErrorInfo, ErrorResponse

log = logging.getLogger("gemlm.serving")


class APIError(Exception):
    """An error to send to the client with an HTTP status and the OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.type = type or ("server_error" if status >= 500 else "invalid_request_error")

    def body(self) -> ErrorResponse:
        info = ErrorInfo(message=self.message, type=self.type, param=self.param, code=self.code)
        return ErrorResponse(error=info)


class BodyTooLarge(APIError):
    """Raised while reading a request body that outgrows the limit (chunked uploads included)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body exceeds {limit} bytes", code="request_too_large", param=None
        )


def error_response(exc: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.body().model_dump(), status_code=exc.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception, including Starlette's 404/405 and bugs, to the OpenAI shape."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(
            APIError(exc.status_code, str(exc.detail), code=code), headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(APIError(400, str(exc.errors()[:1]), code="invalid_request"))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(APIError(500, f"internal error: {type(exc).__name__}"))
