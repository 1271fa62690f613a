"""HTTP clients for ``memsvc serve``, with ``Memory``'s method names, arguments and return types.

    from memsvc import Memory
    m = Memory()                                                    # embedded
    m = MemsvcClient("http://127.0.0.1:8000", api_key=KEY)          # remote: the only line that changes
    m.add(messages=[...], user_id="u1"); hits = m.search("...", user_id="u1")   # -> list[Hit]

    MemsvcClient       (sync, httpx.Client)
    AsyncMemsvcClient  (async, httpx.AsyncClient), the remote twin of AsyncMemory

Errors come back as the ``memsvc.exceptions`` class the server raised (``TextTooLongError``,
``RecordNotFound``, ...); HTTP-only refusals are ``APIError`` subclasses below. Every write carries an
``Idempotency-Key`` that is reused when the call is retried (connection errors, 409, 429, 503), so a
retry never stores twice. The tenant is the API key's: there is no ``for_tenant``. ``stats`` needs a
``user_id`` (the server never reports counts across a tenant).

    MemsvcError
    └── APIError                      status, request_id
        ├── AuthenticationError       401 missing, unknown or revoked key
        ├── PermissionDeniedError     403 an admin key on a data route, or the reverse
        ├── ConflictError             409 the same Idempotency-Key is still running (retryable)
        ├── RateLimitError            429 (retryable)
        └── PayloadTooLargeError      413 (also an InvalidInputError)
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import httpx

from memsvc import exceptions as _exc
from memsvc._wire import hit_from_json, jsonable, record_from_json
from memsvc.exceptions import EmbeddingError, InvalidInputError, MemsvcError, StoreUnavailable
from memsvc.models import ChatEvent, VideoEvent

__all__ = [
    "APIError",
    "AsyncMemsvcClient",
    "AuthenticationError",
    "ConflictError",
    "MemsvcClient",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
]


class APIError(MemsvcError):
    """The server refused a request for an HTTP-level reason."""

    status: int = 0
    request_id: str | None = None


class AuthenticationError(APIError):
    """401: no key, an unknown key or a revoked key."""


class PermissionDeniedError(APIError):
    """403: the key may not use this route."""


class ConflictError(APIError):
    """409: a request with the same Idempotency-Key is still running."""

    is_retryable: ClassVar[bool] = True


class RateLimitError(APIError):
    """429: over the per-key rate limit."""

    is_retryable: ClassVar[bool] = True


class PayloadTooLargeError(APIError, InvalidInputError):
    """413: the request body is over the server's limit."""


_BY_NAME: dict[str, type[MemsvcError]] = {
    "AuthenticationError": AuthenticationError, "PermissionDenied": PermissionDeniedError,
    "Conflict": ConflictError, "RateLimited": RateLimitError, "PayloadTooLarge": PayloadTooLargeError,
    "IdempotencyKeyReused": InvalidInputError,
}
_BY_STATUS: dict[int, type[MemsvcError]] = {
    401: AuthenticationError, 403: PermissionDeniedError, 409: ConflictError, 413: PayloadTooLargeError,
    422: InvalidInputError, 429: RateLimitError, 503: StoreUnavailable,
}


def _error_from(resp: httpx.Response) -> MemsvcError:
    try:
        err = resp.json().get("error") or {}
    except ValueError:
        err = {}
    name, msg = str(err.get("type") or ""), str(err.get("message") or resp.text[:300] or resp.reason_phrase)
    cls = _BY_NAME.get(name) or getattr(_exc, name, None)
    if not (isinstance(cls, type) and issubclass(cls, MemsvcError)):
        cls = _BY_STATUS.get(resp.status_code, APIError)
    exc = cls(msg)
    exc.status = resp.status_code  # type: ignore[attr-defined]
    exc.request_id = err.get("request_id")  # type: ignore[attr-defined]
    return exc


@dataclass
class _Call:
    """One HTTP request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[Any], Any]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    write: bool = False


def _messages(messages: Any) -> Any:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if isinstance(messages, Mapping):
        return [messages]
    return messages


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class _Build:
    """One builder per ``Memory`` method: the same parameters, the request it makes."""

    @staticmethod
    def add(messages: Any, user_id: str, session_id: str | None = None, timestamp: datetime | None = None,
            metadata: dict[str, Any] | None = None) -> _Call:
        body = _drop_none({"messages": _messages(messages), "user_id": user_id, "session_id": session_id,
                           "timestamp": timestamp, "metadata": metadata})
        return _Call("POST", "/v1/messages", lambda d: d["ids"], jsonable(body), write=True)

    @staticmethod
    def add_events(events: Sequence[ChatEvent | VideoEvent]) -> _Call:
        out: list[Any] = []
        for e in events if isinstance(events, Sequence) and not isinstance(events, str) else [events]:
            if isinstance(e, ChatEvent):
                out.append({"type": "chat", "user_id": e.user_id, "text": e.text, "role": e.role,
                            "session_id": e.session_id, "timestamp": e.timestamp, "name": e.name,
                            "client_id": e.client_id, "metadata": e.metadata})
            elif isinstance(e, VideoEvent):
                out.append({"type": "frame", "user_id": e.user_id, "stream_id": e.stream_id, "timestamp": e.timestamp,
                            "embedding": e.embedding, "caption": e.caption, "image_ref": e.image_ref,
                            "client_id": e.client_id, "metadata": e.metadata})
            else:
                raise InvalidInputError(f"events[{len(out)}] is a {type(e).__name__}, not a ChatEvent/VideoEvent")
        return _Call("POST", "/v1/events", lambda d: d["ids"], jsonable({"events": [_drop_none(e) for e in out]}),
                     write=True)

    @staticmethod
    def add_frames(stream_id: str, user_id: str, timestamps: Sequence[Any], embeddings: Any = None,
                   captions: Sequence[str | None] | None = None, images: Sequence[str | None] | None = None,
                   client_ids: Sequence[str | None] | None = None, *,
                   image_refs: Sequence[str | None] | None = None, final: bool = False) -> _Call:
        body = _drop_none({"stream_id": stream_id, "user_id": user_id, "timestamps": timestamps,
                           "embeddings": embeddings, "captions": captions, "images": images, "client_ids": client_ids,
                           "image_refs": image_refs, "final": final or None})
        return _Call("POST", "/v1/frames", lambda d: d["ids"], jsonable(body), write=True)

    @staticmethod
    def search(query: str, user_id: str, limit: int | None = None, budget_tokens: int | None = None,
               time_range: tuple[datetime | None, datetime | None] | None = None, *,
               levels: Sequence[str] | None = None, session_id: str | None = None, stream_id: str | None = None,
               query_time: datetime | None = None) -> _Call:
        body = _drop_none({"query": query, "user_id": user_id, "limit": limit, "budget_tokens": budget_tokens,
                           "time_range": time_range, "levels": levels, "session_id": session_id,
                           "stream_id": stream_id, "query_time": query_time})
        return _Call("POST", "/v1/search", lambda d: [hit_from_json(h) for h in d["hits"]], jsonable(body))

    @staticmethod
    def context(query: str, user_id: str, budget_tokens: int = 1000, **kwargs: Any) -> _Call:
        body = _drop_none({"query": query, "user_id": user_id, "budget_tokens": budget_tokens, **kwargs})
        return _Call("POST", "/v1/context", lambda d: d["context"], jsonable(body))

    @staticmethod
    def get(memory_id: str, user_id: str | None = None) -> _Call:
        return _Call("GET", f"/v1/memories/{_seg(memory_id, 'memory_id')}", record_from_json,
                     params=_drop_none({"user_id": user_id}))

    @staticmethod
    def history(user_id: str, session_id: str | None = None, stream_id: str | None = None,
                limit: int = 100, offset: int = 0) -> _Call:
        params = _drop_none({"user_id": user_id, "session_id": session_id, "stream_id": stream_id,
                             "limit": limit, "offset": offset})
        return _Call("GET", "/v1/history", lambda d: [record_from_json(r) for r in d["items"]], params=params)

    @staticmethod
    def delete(memory_id: str, user_id: str | None = None) -> _Call:
        return _Call("DELETE", f"/v1/memories/{_seg(memory_id, 'memory_id')}", lambda d: d["deleted"],
                     params=_drop_none({"user_id": user_id}), write=True)

    @staticmethod
    def delete_user(user_id: str) -> _Call:
        return _Call("DELETE", f"/v1/users/{_seg(user_id, 'user_id')}", lambda d: d["deleted"], write=True)

    @staticmethod
    def consolidate(user_id: str | None = None, jobs: Sequence[str] | None = None) -> _Call:
        body = _drop_none({"user_id": user_id, "jobs": list(jobs) if jobs is not None else None})
        return _Call("POST", "/v1/consolidate", lambda d: d["report"], jsonable(body), write=True)

    @staticmethod
    def stats(user_id: str | None = None) -> _Call:
        if user_id is None:
            raise InvalidInputError("over REST, stats are per user: pass user_id")
        return _Call("GET", "/v1/stats", lambda d: d["counts"], params={"user_id": user_id})


def _seg(value: Any, what: str) -> str:
    """A path segment: the same type checks as the SDK, then percent-encoded."""
    from urllib.parse import quote

    from memsvc.validation import check_id

    return quote(str(check_id(value, what)), safe="")


_METHODS = tuple(getattr(_Build, n) for n in ("add", "add_events", "add_frames", "search", "context", "get",
                                             "history", "delete", "delete_user", "consolidate", "stats"))


class _Transport:
    """Retry policy and error mapping shared by both clients."""

    def __init__(self, base_url: str, api_key: str, retries: int, backoff_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "memsvc-client"}
        self.retries, self.backoff_s = retries, backoff_s

    def headers_for(self, call: _Call) -> dict[str, str]:
        return {"Idempotency-Key": uuid.uuid4().hex} if call.write else {}

    def outcome(self, call: _Call, resp: httpx.Response | None, error: Exception | None, attempt: int) -> Any:
        """The parsed result, or an exception to raise, or a float: seconds to wait before a retry."""
        last = attempt >= self.retries
        if error is not None:
            if not last:
                return self.backoff_s * 2**attempt
            return StoreUnavailable(f"cannot reach memsvc at {self.base_url}: {error}")
        assert resp is not None  # noqa: S101 - error and resp are exclusive
        if resp.status_code < 400:
            return call.parse(resp.json())
        if resp.status_code in (409, 429, 503) and not last:
            try:
                wait = float(resp.headers.get("Retry-After", ""))
            except ValueError:
                wait = self.backoff_s * 2**attempt
            return min(wait, 5.0)
        return _error_from(resp)


def _build(http: httpx.Client | httpx.AsyncClient, call: _Call, headers: dict[str, str]) -> httpx.Request:
    try:
        return http.build_request(call.method, call.path, json=call.json, params=call.params or None,
                                  headers=headers)
    except (TypeError, ValueError) as exc:  # NaN/inf or objects JSON cannot carry
        if call.path in ("/v1/frames", "/v1/events") and "float" in str(exc):
            raise EmbeddingError("embeddings hold NaN or inf") from exc
        raise InvalidInputError(f"arguments cannot be sent as JSON: {exc}") from exc


def _sync_method(builder: Callable[..., _Call]) -> Callable[..., Any]:
    @functools.wraps(builder)
    def method(self: MemsvcClient, *args: Any, **kwargs: Any) -> Any:
        return self._send(builder(*args, **kwargs))

    return method


def _async_method(builder: Callable[..., _Call]) -> Callable[..., Any]:
    @functools.wraps(builder)
    async def method(self: AsyncMemsvcClient, *args: Any, **kwargs: Any) -> Any:
        return await self._send(builder(*args, **kwargs))

    return method


class MemsvcClient:
    """``Memory`` over HTTP (sync). ``transport`` accepts any httpx transport (e.g. ``ASGITransport``)."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0, retries: int = 2,
                 backoff_s: float = 0.2, transport: httpx.BaseTransport | None = None) -> None:
        self._t = _Transport(base_url, api_key, retries, backoff_s)
        self._http = httpx.Client(base_url=self._t.base_url, headers=self._t.headers, timeout=timeout,
                                  transport=transport)

    def _send(self, call: _Call) -> Any:
        extra = self._t.headers_for(call)
        attempt = 0
        while True:
            resp, error = None, None
            request = _build(self._http, call, extra)
            try:
                resp = self._http.send(request)
            except httpx.TransportError as exc:
                error = exc
            out = self._t.outcome(call, resp, error, attempt)
            if isinstance(out, float):
                time.sleep(out)
                attempt += 1
                continue
            if isinstance(out, BaseException):
                raise out from error
            return out

    def health(self) -> dict[str, Any]:
        """``/readyz``: ``{"status": "ok"|"unavailable", "checks": {...}}``."""
        resp = self._http.get("/readyz")
        return dict(resp.json())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MemsvcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncMemsvcClient:
    """``AsyncMemory`` over HTTP: the same coroutines, on one ``httpx.AsyncClient``."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0, retries: int = 2,
                 backoff_s: float = 0.2, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._t = _Transport(base_url, api_key, retries, backoff_s)
        self._http = httpx.AsyncClient(base_url=self._t.base_url, headers=self._t.headers, timeout=timeout,
                                       transport=transport)

    async def _send(self, call: _Call) -> Any:
        extra = self._t.headers_for(call)
        attempt = 0
        while True:
            resp, error = None, None
            request = _build(self._http, call, extra)
            try:
                resp = await self._http.send(request)
            except httpx.TransportError as exc:
                error = exc
            out = self._t.outcome(call, resp, error, attempt)
            if isinstance(out, float):
                await asyncio.sleep(out)
                attempt += 1
                continue
            if isinstance(out, BaseException):
                raise out from error
            return out

    async def health(self) -> dict[str, Any]:
        resp = await self._http.get("/readyz")
        return dict(resp.json())

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncMemsvcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _install() -> None:
    """Give both clients one method per builder, with the builder's parameters and the SDK's return type."""
    returns = {"add": "list[str]", "add_events": "list[str]", "add_frames": "list[str]", "search": "list[Hit]",
               "context": "str", "get": "MemoryRecord", "history": "list[MemoryRecord]", "delete": "int",
               "delete_user": "int", "consolidate": "dict[str, Any]", "stats": "dict[str, int]"}
    for b in _METHODS:
        sig = inspect.signature(b)
        params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *sig.parameters.values()]
        for cls, wrap in ((MemsvcClient, _sync_method), (AsyncMemsvcClient, _async_method)):
            m = wrap(b)
            m.__signature__ = sig.replace(parameters=params, return_annotation=returns[b.__name__])  # type: ignore[attr-defined]
            m.__annotations__ = {**b.__annotations__, "return": returns[b.__name__]}
            m.__qualname__ = f"{cls.__name__}.{b.__name__}"
            setattr(cls, b.__name__, m)


_install()
