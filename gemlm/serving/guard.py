"""ASGI middleware: the Bearer API key on ``/v1/*`` and the request body size limit.

Pure ASGI (no ``BaseHTTPMiddleware``) so streamed responses pass through untouched. The size
check refuses a declared ``Content-Length`` over the limit before reading anything, and counts
the bytes of bodies without one (chunked), raising ``BodyTooLarge`` once they pass it.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import APIError, BodyTooLarge, error_response


class Guard:
    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app, self.max_body = app, max_body_bytes
        self.key = api_key.encode() if api_key else None

    def _authorized(self, scope: Scope) -> bool:
        if self.key is None or not scope["path"].startswith("/v1"):
            return True
        auth = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = auth.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self._authorized(scope):
            err = APIError(401, "invalid or missing API key", code="invalid_api_key")
            response = error_response(err, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body
            except ValueError:
                response = error_response(APIError(400, "invalid Content-Length"))
                return await response(scope, receive, send)
            if too_big:
                return await error_response(BodyTooLarge(self.max_body))(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        await self.app(scope, counted, send)
