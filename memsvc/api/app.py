"""``create_app``: the FastAPI application behind ``memsvc serve``.

    BoundaryMiddleware (request id, body limit, metrics)
      -> FastAPI (exception handlers -> error bodies)
        -> /healthz /readyz /metrics /openapi.json
        -> /v1/...        tenant key -> Memory.for_tenant(key.tenant)
        -> /v1/admin/...  admin key  -> APIKeyStore
        -> /v1/chat/completions /v1/models   tenant key; only when ``settings.gpu.model`` is set
           (memsvc.gpu: a local LLM, or an external OpenAI-compatible server at ``gpu.base_url``)

One ``Memory`` per process: the embedded qdrant-edge shard admits a single process, and the service
profile scales by running more processes against PostgreSQL and a Qdrant server.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from memsvc.api.auth import ApiState, run_blocking, state_of, tenant_memory
from memsvc.api.config import ApiConfig
from memsvc.api.errors import BoundaryMiddleware, install_handlers
from memsvc.api.metrics import Metrics
from memsvc.api.routes import admin, v1
from memsvc.api.schemas import HealthResponse
from memsvc.config import Settings
from memsvc.sdk import Memory
from memsvc.stores.base import Scope
from memsvc.stores.sql_keys import APIKey, APIKeyStore, utcnow

__all__ = ["create_app"]

log = logging.getLogger("memsvc.api")


def _ready(st: ApiState) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with st.keys.engine.connect() as c:
            c.execute(text("SELECT 1"))
        checks["sql"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        checks["sql"] = f"error: {type(exc).__name__}"
    try:
        st.memory.service.vectors.count(Scope("__readyz__", "__readyz__"))
        checks["vectors"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["vectors"] = f"error: {type(exc).__name__}"
    return checks


def create_app(
    settings: Settings | None = None,
    *,
    memory: Memory | None = None,
    config: ApiConfig | None = None,
    auth_cache_s: float = 2.0,
    warmup: bool = False,
    llm: Any = None,
) -> FastAPI:
    """The REST app over ``memory`` (or a new ``Memory(settings)``, closed on shutdown). With
    ``warmup``, startup loads the embedder in the background and ``/readyz`` answers 503 until then,
    so no client request pays for the model load. With a model in ``settings.gpu`` (or an answerer
    given as ``llm``) the OpenAI-compatible chat routes are mounted, scoped by the key's tenant."""
    from memsvc import __version__

    owns = memory is None
    mem = memory if memory is not None else Memory(settings)
    cfg = config or ApiConfig()
    metrics = Metrics()
    state = ApiState(memory=mem, keys=APIKeyStore(mem.service.sql.engine), config=cfg, metrics=metrics,
                     owns_memory=owns, auth_cache_s=auth_cache_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_purge_loop, state)
            if warmup:
                state.warm = False
                tg.start_soon(_warm, state)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
        close = getattr(app.state.answerer, "close", None)
        if callable(close):
            close()
        if state.owns_memory:
            await anyio.to_thread.run_sync(state.memory.close)

    app = FastAPI(
        title="memsvc", version=__version__, lifespan=lifespan,
        description="Long-term memory for conversational and video assistants. Authenticate with "
                    "`Authorization: Bearer <key>` (`memsvc keys create --tenant NAME`). Every error body is "
                    "`{\"error\": {\"type\", \"message\", \"status\", \"request_id\"}}`.",
    )
    app.state.api = state
    install_handlers(app)
    app.include_router(v1)
    app.include_router(admin)
    answerer = llm if llm is not None else _answerer(mem.settings)
    app.state.answerer = answerer
    if answerer is not None:
        app.include_router(_chat_router(answerer, mem.settings))

    @app.get("/healthz", response_model=HealthResponse, tags=["ops"])
    async def healthz() -> Any:
        """Liveness: the process answers."""
        return {"status": "ok", "checks": {}}

    @app.get("/readyz", response_model=HealthResponse, tags=["ops"],
             responses={503: {"model": HealthResponse}})
    async def readyz(request: Request) -> Any:
        """Readiness: the SQL database and the vector index answer, and the embedder is loaded."""
        st = state_of(request)
        checks = await run_blocking(st, _ready, st)
        checks["embedder"] = "ok" if st.warm else "loading"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                            status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def metrics_route(request: Request) -> Response:
        """Prometheus metrics (text exposition format)."""
        body, ctype = state_of(request).metrics.render()
        return Response(body, media_type=ctype)

    app.add_middleware(BoundaryMiddleware, max_body_bytes=cfg.max_body_bytes, metrics=metrics)
    return app


def _answerer(settings: Settings) -> Any:
    if not settings.gpu.enabled:
        return None
    from memsvc.gpu.runtime import answerer_from_config

    return answerer_from_config(settings.gpu)


async def _tenant_view(ctx: Annotated[tuple[Memory, APIKey], Depends(tenant_memory)]) -> Memory:
    return ctx[0]


def _chat_router(answerer: Any, settings: Settings) -> APIRouter:
    """``/v1/chat/completions`` and ``/v1/models`` behind tenant keys; ``user`` picks whose memory."""
    from memsvc.gpu.openai_api import create_openai_router

    return create_openai_router(
        answerer,
        memory_dependency=_tenant_view,
        budget_tokens=settings.gpu.budget_tokens,
        default_max_tokens=settings.gpu.max_new_tokens,
        dependencies=[Depends(tenant_memory)],
    )


async def _warm(st: ApiState) -> None:
    try:
        await run_blocking(st, st.memory.service.embedder.embed, ["warm up"])
    except Exception:  # noqa: BLE001 - the first real request will report the failure
        log.exception("embedder warm-up failed")
    st.warm = True


async def _purge_loop(st: ApiState, every_s: float = 600.0) -> None:
    """Drop idempotency records older than their TTL, now and then."""
    while True:
        try:
            cutoff = utcnow() - timedelta(seconds=st.config.idempotency_ttl_s)
            n = await run_blocking(st, st.keys.purge_idempotency, cutoff)
            if n:
                log.info("purged %d expired idempotency keys", n)
        except Exception:  # noqa: BLE001 - a failed purge must not stop the server
            log.exception("idempotency purge failed")
        await anyio.sleep(every_s)
