"""The ``/v1`` routes: one per ``Memory`` method, plus key management for admin keys.

Each data route runs the SDK call for the key's tenant on the bounded thread pool; the SDK validates
and raises typed errors, which ``memsvc.api.errors`` turns into 4xx bodies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from memsvc._wire import jsonable, record_to_json
from memsvc.api.auth import admin_key, idempotent, run_blocking, state_of, tenant_memory
from memsvc.api.schemas import (
    AddEventsRequest,
    AddFramesRequest,
    AddMessagesRequest,
    AddResponse,
    ConsolidateRequest,
    ConsolidateResponse,
    ContextRequest,
    ContextResponse,
    DeleteResponse,
    ErrorBody,
    HistoryResponse,
    KeyCreated,
    KeyCreateRequest,
    KeyList,
    KeyOut,
    RecordOut,
    SearchRequest,
    SearchResponse,
    StatsResponse,
)
from memsvc.exceptions import InvalidInputError, TextTooLongError
from memsvc.models import ChatEvent, VideoEvent
from memsvc.sdk import Memory
from memsvc.stores.sql_keys import APIKey

__all__ = ["admin", "v1"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody, "description": d}
    for s, d in ((400, "Malformed request body (not parsable as JSON)"),
                 (401, "Missing, unknown or revoked API key"), (403, "Key not allowed here"),
                 (413, "Request body too large"), (422, "Invalid input (nothing was stored)"),
                 (429, "Rate limited"), (503, "Storage unavailable; retry"))
}
_WRITE_ERRORS = {**_ERRORS, 409: {"model": ErrorBody, "description": "Same Idempotency-Key still running"}}

v1 = APIRouter(prefix="/v1", tags=["memories"], responses=_ERRORS)
admin = APIRouter(prefix="/v1/admin", tags=["admin"], responses=_ERRORS)
TenantCtx = Annotated[tuple[Memory, APIKey], Depends(tenant_memory)]
AdminKey = Annotated[APIKey, Depends(admin_key)]
OptId = Annotated[str | None, Query(min_length=1, max_length=256)]


def _limits(request: Request, n: int, texts: Iterable[str | None] = ()) -> None:
    cfg = state_of(request).config
    if n > cfg.max_batch:
        raise InvalidInputError(f"{n} items in one request; the limit is {cfg.max_batch}")
    for i, t in enumerate(texts):
        if t is not None and len(t) > cfg.max_text_chars:
            raise TextTooLongError(f"item {i} has {len(t)} characters; the limit is {cfg.max_text_chars}")


def _derive(ikey: str | None, i: int, given: str | None) -> str | None:
    """A client id for an item without one, derived from the request's Idempotency-Key."""
    return given if given is not None or ikey is None else f"idem:{ikey}:{i}"


@v1.post("/messages", response_model=AddResponse, responses=_WRITE_ERRORS)
async def add_messages(body: AddMessagesRequest, request: Request, ctx: TenantCtx) -> Any:
    """Store chat messages (``Memory.add``); searchable when this returns."""
    mem, key = ctx
    _limits(request, len(body.messages), (m.content for m in body.messages))

    async def run(ikey: str | None) -> tuple[int, Any]:
        msgs = []
        for i, m in enumerate(body.messages):
            d = m.model_dump(exclude_none=True)
            cid = _derive(ikey, i, d.pop("client_id", d.pop("id", None)))
            if cid is not None:
                d["client_id"] = cid
            msgs.append(d)
        ids = await run_blocking(state_of(request), mem.add, msgs, body.user_id, body.session_id,
                                 body.timestamp, body.metadata)
        return 200, {"ids": ids}

    return await idempotent(request, str(key.tenant), body, run)


@v1.post("/frames", response_model=AddResponse, responses=_WRITE_ERRORS)
async def add_frames(body: AddFramesRequest, request: Request, ctx: TenantCtx) -> Any:
    """Store video frames (``Memory.add_frames``): per frame an embedding and/or a caption."""
    mem, key = ctx
    _limits(request, len(body.timestamps), body.captions or ())

    async def run(ikey: str | None) -> tuple[int, Any]:
        given = body.client_ids if body.client_ids is not None and len(body.client_ids) == len(body.timestamps) \
            else [None] * len(body.timestamps)
        cids = body.client_ids if ikey is None else [_derive(ikey, i, c) for i, c in enumerate(given)]
        ids = await run_blocking(
            state_of(request), mem.add_frames, stream_id=body.stream_id, user_id=body.user_id,
            timestamps=body.timestamps, embeddings=body.embeddings, captions=body.captions,
            client_ids=cids, image_refs=body.image_refs or body.images, final=body.final)
        return 200, {"ids": ids}

    return await idempotent(request, str(key.tenant), body, run)


@v1.post("/events", response_model=AddResponse, responses=_WRITE_ERRORS)
async def add_events(body: AddEventsRequest, request: Request, ctx: TenantCtx) -> Any:
    """Store typed chat and frame events (``Memory.add_events``); ids in input order."""
    mem, key = ctx
    _limits(request, len(body.events),
            (e.text if e.type == "chat" else e.caption for e in body.events))

    async def run(ikey: str | None) -> tuple[int, Any]:
        events: list[ChatEvent | VideoEvent] = []
        for i, e in enumerate(body.events):
            cid = _derive(ikey, i, e.client_id)
            if e.type == "chat":
                events.append(ChatEvent(user_id=e.user_id, text=e.text, role=e.role, session_id=e.session_id,
                                        timestamp=e.timestamp, name=e.name, client_id=cid, metadata=e.metadata))
            else:
                import numpy as np

                # float64 as parsed; the SDK checks it (finite, fits float32) and converts
                emb = None if e.embedding is None else np.asarray(e.embedding, dtype=np.float64)
                events.append(VideoEvent(user_id=e.user_id, stream_id=e.stream_id, timestamp=e.timestamp,
                                         embedding=emb, caption=e.caption, image_ref=e.image_ref, client_id=cid,
                                         metadata=e.metadata))
        ids = await run_blocking(state_of(request), mem.add_events, events)
        return 200, {"ids": ids}

    return await idempotent(request, str(key.tenant), body, run)


def _search_args(request: Request, body: SearchRequest) -> dict[str, Any]:
    cfg = state_of(request).config
    if body.limit is not None and body.limit > cfg.max_limit:
        raise InvalidInputError(f"limit is {body.limit}; the most is {cfg.max_limit}")
    _limits(request, 1, [body.query])
    return {"query": body.query, "user_id": body.user_id, "budget_tokens": body.budget_tokens,
            "time_range": body.time_range, "levels": body.levels, "session_id": body.session_id,
            "stream_id": body.stream_id, "query_time": body.query_time}


@v1.post("/search", response_model=SearchResponse)
async def search(body: SearchRequest, request: Request, ctx: TenantCtx) -> Any:
    """Ranked hits (``Memory.search``); with ``budget_tokens`` exactly the hits ``/v1/context`` packs."""
    mem, _ = ctx
    args = _search_args(request, body)
    hits = await run_blocking(state_of(request), mem.search, limit=body.limit, **args)
    return JSONResponse({"hits": [h.to_dict() for h in hits]})


@v1.post("/context", response_model=ContextResponse)
async def context(body: ContextRequest, request: Request, ctx: TenantCtx) -> Any:
    """Prompt text (``Memory.context``), never over ``budget_tokens`` cl100k_base tokens."""
    mem, _ = ctx
    args = _search_args(request, body)
    if body.limit is not None:
        args["limit"] = body.limit
    text = await run_blocking(state_of(request), mem.context, **args)
    return JSONResponse({"context": text})


@v1.get("/history", response_model=HistoryResponse)
async def history(
    request: Request,
    ctx: TenantCtx,
    user_id: Annotated[str, Query(min_length=1, max_length=256)],
    session_id: OptId = None,
    stream_id: OptId = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**12)] = 0,
) -> Any:
    """A user's events in arrival order, one page at a time (follow ``next_offset``)."""
    mem, _ = ctx
    cap = state_of(request).config.max_page
    if limit > cap:
        raise InvalidInputError(f"limit is {limit}; the most per page is {cap}")
    rows = await run_blocking(state_of(request), mem.history, user_id, session_id, stream_id, limit + 1, offset)
    more = len(rows) > limit
    return JSONResponse({"items": [record_to_json(r) for r in rows[:limit]], "limit": limit, "offset": offset,
                         "next_offset": offset + limit if more else None})


@v1.get("/memories/{memory_id:path}", response_model=RecordOut, responses={404: {"model": ErrorBody}})
async def get_memory(memory_id: str, request: Request, ctx: TenantCtx, user_id: OptId = None) -> Any:
    """One memory (unit or event) by id, in the key's tenant."""
    mem, _ = ctx
    rec = await run_blocking(state_of(request), mem.get, memory_id, user_id)
    return JSONResponse(record_to_json(rec))


class _DeleteParams(BaseModel):
    memory_id: str | None = None
    user_id: str | None = None


@v1.delete("/memories/{memory_id:path}", response_model=DeleteResponse,
           responses={**_WRITE_ERRORS, 404: {"model": ErrorBody}})
async def delete_memory(memory_id: str, request: Request, ctx: TenantCtx, user_id: OptId = None) -> Any:
    """Delete a memory and everything derived from it; returns units removed."""
    mem, key = ctx

    async def run(_: str | None) -> tuple[int, Any]:
        return 200, {"deleted": await run_blocking(state_of(request), mem.delete, memory_id, user_id)}

    return await idempotent(request, str(key.tenant), _DeleteParams(memory_id=memory_id, user_id=user_id), run)


@v1.delete("/users/{user_id:path}", response_model=DeleteResponse, responses=_WRITE_ERRORS)
async def delete_user(user_id: str, request: Request, ctx: TenantCtx) -> Any:
    """Delete every event, unit and vector of a user in the key's tenant."""
    mem, key = ctx

    async def run(_: str | None) -> tuple[int, Any]:
        return 200, {"deleted": await run_blocking(state_of(request), mem.delete_user, user_id)}

    return await idempotent(request, str(key.tenant), _DeleteParams(user_id=user_id), run)


@v1.post("/consolidate", response_model=ConsolidateResponse, responses=_WRITE_ERRORS)
async def consolidate(request: Request, ctx: TenantCtx, body: ConsolidateRequest | None = None) -> Any:
    """Run the consolidation jobs now for the key's tenant (``Memory.consolidate``)."""
    mem, key = ctx
    params = body or ConsolidateRequest()

    async def run(_: str | None) -> tuple[int, Any]:
        report = await run_blocking(state_of(request), mem.consolidate, params.user_id, params.jobs)
        return 200, {"report": jsonable(report)}

    return await idempotent(request, str(key.tenant), params, run)


@v1.get("/stats", response_model=StatsResponse)
async def stats(request: Request, ctx: TenantCtx, user_id: Annotated[str, Query(min_length=1, max_length=256)]) -> Any:
    """Counts of a user's events, units per level and vectors."""
    mem, _ = ctx
    return JSONResponse({"counts": await run_blocking(state_of(request), mem.stats, user_id)})


# -- admin: key management -------------------------------------------------------------------------
@admin.post("/keys", response_model=KeyCreated)
async def create_key(body: KeyCreateRequest, request: Request, _: AdminKey) -> Any:
    """A new key for a tenant (tenants exist by having keys). The secret is in this answer only."""
    st = state_of(request)
    rec, secret = await run_blocking(st, st.keys.create, body.tenant, body.name)
    return JSONResponse({**rec.to_dict(), "key": secret})


@admin.get("/keys", response_model=KeyList)
async def list_keys(
    request: Request, _: AdminKey, tenant: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    include_revoked: bool = False,
) -> Any:
    """Keys (never their secrets), optionally of one tenant."""
    st = state_of(request)
    keys = await run_blocking(st, st.keys.list, tenant, include_revoked)
    return JSONResponse({"keys": [k.to_dict() for k in keys]})


@admin.delete("/keys/{key_id}", response_model=KeyOut, responses={404: {"model": ErrorBody}})
async def revoke_key(key_id: str, request: Request, _: AdminKey) -> Any:
    """Revoke a key; it stops working at once in this process."""
    st = state_of(request)
    rec = await run_blocking(st, st.keys.revoke, key_id)
    st.forget_key(key_id)
    return JSONResponse(rec.to_dict())
