"""Error bodies, exception handlers and the outer ASGI middleware (request ids, body limit, metrics).

Every error answer is ``{"error": {"type", "message", "status", "request_id", "details"?}}``:

    InvalidInputError and subclasses -> 422 (type = the subclass name, e.g. TextTooLongError)
    request body not matching the schema -> 422 InvalidInputError with ``details``
    RecordNotFound                  -> 404
    StoreUnavailable                -> 503 with Retry-After
    other MemsvcError / any other   -> 500 (message without internals; logged with the request id)
    APIError (auth, limits, idempotency) -> its own status: 401, 403, 409, 413, 429
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memsvc.exceptions import InvalidInputError, MemsvcError, RecordNotFound, StoreUnavailable

__all__ = ["APIError", "BoundaryMiddleware", "error_json", "install_handlers"]

log = logging.getLogger("memsvc.api")

_HTTP_NAMES = {400: "BadRequest", 401: "AuthenticationError", 403: "PermissionDenied", 404: "NotFound",
               405: "MethodNotAllowed", 409: "Conflict", 413: "PayloadTooLarge", 415: "UnsupportedMediaType",
               422: "InvalidInputError", 429: "RateLimited", 503: "StoreUnavailable"}


class APIError(StarletteHTTPException):
    """An HTTP-level refusal with a typed error body (a Starlette HTTPException, so FastAPI's body
    parsing lets it through unchanged)."""

    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.error_type = error_type


def error_json(status: int, error_type: str, message: str, request_id: str | None = None,
               details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"type": error_type, "message": message, "status": status, "request_id": request_id}
    if details is not None:
        err["details"] = details
    return {"error": err}


def _rid(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _respond(request: Request, status: int, error_type: str, message: str,
             details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_json(status, error_type, message, _rid(request), details), status_code=status,
                        headers=headers)


def _memsvc_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidInputError):
        return _respond(request, 422, type(exc).__name__, str(exc))
    if isinstance(exc, RecordNotFound):
        return _respond(request, 404, "RecordNotFound", str(exc))
    if isinstance(exc, StoreUnavailable):
        log.warning("store unavailable (request %s): %s", _rid(request), exc)
        return _respond(request, 503, "StoreUnavailable", "storage is temporarily unavailable; retry later",
                        headers={"Retry-After": "1"})
    log.error("request %s failed", _rid(request), exc_info=exc)
    name = type(exc).__name__ if isinstance(exc, MemsvcError) else "InternalError"
    return _respond(request, 500, name, f"internal error (request id {_rid(request)})")


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    details = []
    for e in exc.errors()[:20]:  # no "input" echo: bodies can be large or sensitive
        loc = [str(p) for p in e.get("loc", ())]
        details.append({"loc": loc, "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))})
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"][1:] if first["loc"][:1] == ["body"] else first["loc"]) or "request"
    return _respond(request, 422, "InvalidInputError", f"{where}: {first['msg']}", details)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
    etype = getattr(exc, "error_type", None) or _HTTP_NAMES.get(exc.status_code, "HTTPError")
    return _respond(request, exc.status_code, etype, str(exc.detail), headers=getattr(exc, "headers", None))


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the error body above."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(MemsvcError, _memsvc_error)
    app.add_exception_handler(Exception, _memsvc_error)


class BoundaryMiddleware:
    """Outermost layer: request id, request body size limit, in-flight/latency metrics.

    The size limit refuses a declared ``Content-Length`` over ``max_body_bytes`` before reading, and
    counts streamed (chunked) bodies as they arrive."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: Any) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        status = {"code": 500}
        started = time.perf_counter()

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await _send_json(send_wrapped, 413, error_json(
                413, "PayloadTooLarge", f"request body of {declared} bytes; the limit is {self.max_body}", rid))
            self.metrics.observe(scope, status["code"], time.perf_counter() - started)
            return
        seen = {"n": 0}

        async def receive_counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["n"] += len(message.get("body", b""))
                if seen["n"] > self.max_body:
                    raise APIError(413, "PayloadTooLarge", f"request body over the limit of {self.max_body} bytes")
            return message

        self.metrics.in_flight(+1)
        try:
            await self.app(scope, receive_counted, send_wrapped)
        finally:
            self.metrics.in_flight(-1)
            self.metrics.observe(scope, status["code"], time.perf_counter() - started)


def _request_id(scope: Scope) -> str:
    for k, v in scope.get("headers", ()):
        if k == b"x-request-id":
            s: str = v.decode("latin-1")
            if 0 < len(s) <= 64 and s.replace("-", "").isalnum():
                return s
    return uuid.uuid4().hex


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", ()):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    import json

    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": raw})
