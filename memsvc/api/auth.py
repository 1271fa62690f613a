"""Request context: the process-wide state, bearer-key authentication, per-key rate limits, the
bounded thread pool for blocking calls, and ``Idempotency-Key`` handling for writes.

Every data route depends on ``tenant_memory``: the key's tenant picks ``Memory.for_tenant(tenant)``, so
a request can only ever reach its own tenant's rows and vectors. Admin keys manage keys and nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from memsvc.api.config import ApiConfig
from memsvc.api.errors import APIError
from memsvc.api.metrics import Metrics
from memsvc.sdk import Memory
from memsvc.stores.sql_keys import APIKey, APIKeyStore, hash_key

__all__ = ["ApiState", "admin_key", "idempotent", "run_blocking", "state_of", "tenant_memory"]

T = TypeVar("T")
_bearer = HTTPBearer(auto_error=False, description="An API key from `memsvc keys create`.")
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@dataclass
class ApiState:
    """What one server process holds: one ``Memory`` (embedded shards allow one process), the key
    store on the same database, the limits, the thread limiter and the metrics."""

    memory: Memory
    keys: APIKeyStore
    config: ApiConfig
    metrics: Metrics
    owns_memory: bool = False
    auth_cache_s: float = 2.0
    warm: bool = True
    """False while the embedder loads at startup (``create_app(warmup=True)``); ``/readyz`` waits for it."""
    """A verified key is trusted this long without another SQL lookup; revocation through the API
    takes effect at once, through the CLI within this many seconds."""
    limiter: anyio.CapacityLimiter = field(init=False)
    _verified: dict[str, tuple[APIKey, float]] = field(default_factory=dict)
    _buckets: dict[str, list[float]] = field(default_factory=dict)
    _views: dict[str, Memory] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.config.workers)

    def view(self, tenant: str) -> Memory:
        if tenant not in self._views:
            if len(self._views) > 10_000:
                self._views.clear()
            self._views[tenant] = self.memory.for_tenant(tenant)
        return self._views[tenant]

    def forget_key(self, key_id: str) -> None:
        for h, (k, _) in list(self._verified.items()):
            if k.id == key_id:
                del self._verified[h]

    def take_token(self, key_id: str) -> float:
        """0 when the request may run, else the seconds until a token is free."""
        rate = self.config.rate_per_s
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        bucket = self._buckets.setdefault(key_id, [float(self.config.rate_burst), now])
        bucket[0] = min(float(self.config.rate_burst), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / rate


def state_of(request: Request) -> ApiState:
    st: ApiState = request.app.state.api
    return st


async def run_blocking(st: ApiState, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking store/model call on the bounded pool (``ApiConfig.workers`` threads)."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=st.limiter)


async def _authenticate(request: Request, creds: HTTPAuthorizationCredentials | None) -> APIKey:
    st = state_of(request)
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        st.metrics.auth_failures.inc()
        raise APIError(401, "AuthenticationError", "missing API key: send 'Authorization: Bearer <key>'",
                       _UNAUTHORIZED)
    digest = hash_key(creds.credentials)
    cached = st._verified.get(digest)
    now = time.monotonic()
    if cached is not None and cached[1] > now:
        key = cached[0]
    else:
        found = await run_blocking(st, st.keys.verify, creds.credentials)
        if found is None:
            st._verified.pop(digest, None)
            st.metrics.auth_failures.inc()
            raise APIError(401, "AuthenticationError", "invalid or revoked API key", _UNAUTHORIZED)
        key = found
        if st.auth_cache_s > 0:
            if len(st._verified) > 10_000:
                st._verified.clear()
            st._verified[digest] = (key, now + st.auth_cache_s)
    wait = st.take_token(key.id)
    if wait > 0:
        st.metrics.rate_limited.inc()
        raise APIError(429, "RateLimited", f"rate limit of {st.config.rate_per_s:g} requests/s for this key",
                       {"Retry-After": str(max(1, round(wait + 0.5)))})
    return key


async def tenant_memory(
    request: Request, creds: Bearer
) -> tuple[Memory, APIKey]:
    """The caller's tenant view of the process ``Memory`` (401 without a live key, 403 for admin keys)."""
    key = await _authenticate(request, creds)
    if key.tenant is None:
        raise APIError(403, "PermissionDenied", "admin keys manage keys only; use a tenant key for data")
    return state_of(request).view(key.tenant), key


async def admin_key(request: Request, creds: Bearer) -> APIKey:
    key = await _authenticate(request, creds)
    if not key.is_admin:
        raise APIError(403, "PermissionDenied", "this route needs an admin key (memsvc keys create --admin)")
    return key


async def idempotent(
    request: Request, tenant: str, body: BaseModel,
    run: Callable[[str | None], Awaitable[tuple[int, Any]]],
) -> JSONResponse:
    """Run a write once per ``Idempotency-Key``: a repeat with the same key and body gets the first
    response again (header ``Idempotent-Replayed: true``) and stores nothing; the same key with another
    body is refused (422), and one still running answers 409. ``run`` gets the key to derive client ids
    from, so even a write whose response was lost in a crash is not stored twice on retry."""
    st = state_of(request)
    ikey = request.headers.get("idempotency-key")
    if ikey is None:
        status, payload = await run(None)
        return JSONResponse(payload, status_code=status)
    if not 1 <= len(ikey) <= 200 or not ikey.isprintable():
        raise APIError(422, "InvalidInputError", "Idempotency-Key must be 1-200 printable characters")
    fp = hashlib.sha256(
        f"{request.method} {request.url.path}?{request.url.query}\n{body.model_dump_json()}".encode()
    ).hexdigest()
    claim = await run_blocking(st, st.keys.claim, tenant, ikey, fp, st.config.idempotency_pending_s)
    if claim.outcome == "replay":
        st.metrics.idempotent_replays.inc()
        return JSONResponse(claim.response, status_code=claim.status_code or 200,
                            headers={"Idempotent-Replayed": "true"})
    if claim.outcome == "mismatch":
        raise APIError(422, "IdempotencyKeyReused", "this Idempotency-Key was used for a different request")
    if claim.outcome == "conflict":
        raise APIError(409, "Conflict", "a request with this Idempotency-Key is still running; retry later",
                       {"Retry-After": "1"})
    try:
        status, payload = await run(ikey)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await run_blocking(st, st.keys.release, tenant, ikey)
        raise
    await run_blocking(st, st.keys.complete, tenant, ikey, status, payload)
    return JSONResponse(payload, status_code=status)
