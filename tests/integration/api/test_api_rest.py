"""REST API through httpx's ASGI transport: auth, tenant isolation, limits, idempotency, pagination,
OpenAPI, metrics and health. Real Memory (SQLite + qdrant-edge, hashing embedder); nothing mocked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_support import Api, make_api

from memsvc import Memory
from memsvc.api import ApiConfig
from memsvc.api.schemas import ErrorBody, HistoryResponse, HitOut, RecordOut, SearchResponse

pytestmark = pytest.mark.anyio

T0 = "2023-05-08T13:56:00+00:00"
DOG = [
    {"role": "user", "content": "I adopted a puppy named Rex last week", "name": "Ann"},
    {"role": "assistant", "content": "Congratulations! What breed is Rex?"},
    {"role": "user", "content": "He is a golden retriever, very playful", "name": "Ann"},
]
JOB = [{"role": "user", "content": "I started a new job as a nurse at the city hospital", "name": "Ann"}]


def assert_error(r: httpx.Response, status: int, etype: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = ErrorBody.model_validate(r.json())
    assert body.error.status == status and body.error.message
    assert body.error.request_id == r.headers["x-request-id"]
    if etype is not None:
        assert body.error.type == etype, body
    return r.json()["error"]


async def add(c: httpx.AsyncClient, messages: list[dict[str, Any]], user: str = "ann", **kw: Any) -> list[str]:
    r = await c.post("/v1/messages", json={"messages": messages, "user_id": user, "timestamp": T0, **kw})
    assert r.status_code == 200, r.text
    return list(r.json()["ids"])


# -- auth -------------------------------------------------------------------------------------------
async def test_missing_malformed_and_wrong_keys_are_401(api: Api) -> None:
    body = {"query": "dog", "user_id": "ann"}
    async with api.client() as c:
        r = await c.post("/v1/search", json=body)
        assert_error(r, 401, "AuthenticationError")
        assert r.headers["www-authenticate"] == "Bearer"
        assert_error(await c.post("/v1/search", json=body, headers={"Authorization": "Basic YTpi"}), 401)
        assert_error(await c.post("/v1/search", json=body, headers={"Authorization": "Bearer"}), 401)
        wrong = api.acme[:-4] + "AAAA"
        assert_error(await c.post("/v1/search", json=body, headers={"Authorization": f"Bearer {wrong}"}), 401)
        assert_error(await c.post("/v1/search", json=body, headers={"Authorization": "Bearer x" * 500}), 401)


async def test_revoked_key_is_refused_at_once(api: Api) -> None:
    async with api.client(api.acme) as c, api.client(api.admin) as adm:
        await add(c, DOG)
        key_id = api.acme.split("_")[1]
        r = await adm.delete(f"/v1/admin/keys/{key_id}")
        assert r.status_code == 200 and r.json()["revoked_at"]
        assert_error(await c.post("/v1/search", json={"query": "dog", "user_id": "ann"}), 401,
                     "AuthenticationError")
        assert_error(await adm.delete("/v1/admin/keys/nope"), 404, "RecordNotFound")


async def test_revocation_outside_the_api_applies_after_the_cache(memory: Memory) -> None:
    api = make_api(memory, auth_cache_s=0)
    async with api.client(api.globex) as c:
        assert (await c.get("/v1/history", params={"user_id": "ann"})).status_code == 200
        api.keys.revoke(api.globex.split("_")[1])  # as `memsvc keys revoke` would, from another process
        assert_error(await c.get("/v1/history", params={"user_id": "ann"}), 401)


async def test_admin_keys_manage_keys_and_read_no_data(api: Api) -> None:
    async with api.client(api.admin) as adm, api.client(api.acme) as c:
        assert_error(await adm.post("/v1/search", json={"query": "x", "user_id": "ann"}), 403, "PermissionDenied")
        assert_error(await c.get("/v1/admin/keys"), 403, "PermissionDenied")
        r = await adm.post("/v1/admin/keys", json={"tenant": "initech", "name": "ci"})
        assert r.status_code == 200, r.text
        new = r.json()
        assert new["tenant"] == "initech" and new["key"].startswith("msk_") and not new["is_admin"]
        listed = (await adm.get("/v1/admin/keys", params={"tenant": "initech"})).json()["keys"]
        assert [k["id"] for k in listed] == [new["id"]] and "key" not in listed[0]
        async with api.client(new["key"]) as ini:
            await add(ini, JOB)
            hits = (await ini.post("/v1/search", json={"query": "nurse", "user_id": "ann"})).json()["hits"]
            assert hits and "nurse" in hits[0]["text"]
        # the new tenant's data is invisible to acme
        assert (await c.post("/v1/search", json={"query": "nurse", "user_id": "ann"})).json()["hits"] == []
    # keys are stored hashed: no secret in the table
    with api.keys.engine.connect() as conn:
        from sqlalchemy import text

        dump = " ".join(str(v) for row in conn.execute(text("SELECT * FROM api_keys")) for v in row)
    assert new["key"] not in dump and api.acme not in dump


# -- tenant isolation -------------------------------------------------------------------------------
async def test_tenants_never_see_each_other(api: Api) -> None:
    async with api.client(api.acme) as a, api.client(api.globex) as g:
        a_ids = await add(a, DOG)
        g_ids = await add(g, JOB)  # same user id, other tenant
        for c, mine, theirs, word in ((a, a_ids, g_ids, "retriever"), (g, g_ids, a_ids, "nurse")):
            hits = (await c.post("/v1/search", json={"query": "dog nurse job puppy", "user_id": "ann",
                                                     "limit": 50})).json()["hits"]
            srcs = {s for h in hits for s in h["source_ids"]}
            assert srcs and srcs <= set(mine) and not srcs & set(theirs)
            ctx = (await c.post("/v1/context", json={"query": word, "user_id": "ann"})).json()["context"]
            assert word in ctx
            hist = (await c.get("/v1/history", params={"user_id": "ann"})).json()["items"]
            assert [h["id"] for h in hist] == mine
            assert_error(await c.get(f"/v1/memories/{theirs[0]}"), 404, "RecordNotFound")
            assert_error(await c.get(f"/v1/memories/{theirs[0]}", params={"user_id": "ann"}), 404)
            assert_error(await c.delete(f"/v1/memories/{theirs[0]}"), 404, "RecordNotFound")
            assert (await c.get(f"/v1/memories/{mine[0]}")).status_code == 200
        # deleting the user in one tenant leaves the other tenant's user intact
        assert (await a.delete("/v1/users/ann")).json()["deleted"] > 0
        assert (await a.get("/v1/history", params={"user_id": "ann"})).json()["items"] == []
        assert [h["id"] for h in (await g.get("/v1/history", params={"user_id": "ann"})).json()["items"]] == g_ids
        assert (await g.get("/v1/stats", params={"user_id": "ann"})).json()["counts"]["events"] == 1


# -- limits and error bodies ------------------------------------------------------------------------
@pytest.fixture
def tight(memory: Memory) -> Api:
    return make_api(memory, ApiConfig(max_body_bytes=4096, max_batch=3, max_text_chars=100, max_limit=5,
                                      max_page=10))


async def test_limits_answer_413_and_422_with_error_bodies(tight: Api, memory: Memory) -> None:
    async with tight.client(tight.acme) as c:
        big = {"messages": [{"role": "user", "content": "x" * 5000}], "user_id": "ann"}
        err = assert_error(await c.post("/v1/messages", json=big), 413, "PayloadTooLarge")
        assert "4096" in err["message"]

        async def chunks() -> Any:  # no Content-Length: counted while streaming
            yield b'{"messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}], "user_id": "ann"}'

        r = await c.post("/v1/messages", content=chunks(), headers={"Content-Type": "application/json"})
        assert_error(r, 413, "PayloadTooLarge")
        err = assert_error(await c.post("/v1/messages", json={"messages": [{"content": "hi"}] * 4, "user_id": "ann"}),
                           422, "InvalidInputError")
        assert "limit is 3" in err["message"]
        assert_error(await c.post("/v1/messages", json={"messages": [{"content": "z" * 101}], "user_id": "ann"}),
                     422, "TextTooLongError")
        assert_error(await c.post("/v1/search", json={"query": "q", "user_id": "ann", "limit": 6}), 422)
        assert_error(await c.get("/v1/history", params={"user_id": "ann", "limit": 11}), 422)
        # the SDK's own checks come back typed
        assert_error(await c.post("/v1/messages", json={"messages": [{"content": "  "}], "user_id": "ann"}),
                     422, "EmptyTextError")
        naive = {"messages": [{"content": "hi"}], "user_id": "ann", "timestamp": "2023-05-08T13:56:00"}
        assert_error(await c.post("/v1/messages", json=naive), 422, "TimestampError")
        frames = {"stream_id": "cam", "user_id": "ann", "timestamps": [T0], "embeddings": [[0.0, 0.0]]}
        assert_error(await c.post("/v1/frames", json=frames), 422, "EmbeddingError")
        # schema errors name the field, echo no input, and come with details
        err = assert_error(await c.post("/v1/search", json={"query": "q", "user_id": 5, "bogus": 1}), 422,
                           "InvalidInputError")
        assert {tuple(d["loc"]) for d in err["details"]} >= {("body", "user_id"), ("body", "bogus")}
        assert all("input" not in d for d in err["details"])
        assert_error(await c.post("/v1/search", content=b"{not json", headers={"Content-Type": "application/json"}),
                     422)
        assert_error(await c.get("/v1/nowhere"), 404, "NotFound")
        assert_error(await c.put("/v1/search"), 405)
    assert memory.for_tenant("acme").stats("ann")["events"] == 0  # nothing stored by rejected requests


# -- idempotency ------------------------------------------------------------------------------------
async def test_idempotency_key_replays_without_duplicates(api: Api, memory: Memory) -> None:
    async with api.client(api.acme) as c:
        body = {"messages": DOG, "user_id": "ann", "timestamp": T0}
        h = {"Idempotency-Key": "order-42"}
        r1 = await c.post("/v1/messages", json=body, headers=h)
        r2 = await c.post("/v1/messages", json=body, headers=h)
        assert r1.status_code == r2.status_code == 200
        assert r1.json() == r2.json() and r2.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in r1.headers
        assert memory.for_tenant("acme").stats("ann")["events"] == 3
        # same key, other body: refused; other tenant, same key: independent
        assert_error(await c.post("/v1/messages", json={**body, "messages": JOB}, headers=h), 422,
                     "IdempotencyKeyReused")
        async with api.client(api.globex) as g:
            assert (await g.post("/v1/messages", json=body, headers=h)).headers.get("idempotent-replayed") is None
        # a failed request releases its key: the corrected retry runs
        bad = {"messages": [{"content": " "}], "user_id": "ann"}
        assert_error(await c.post("/v1/messages", json=bad, headers={"Idempotency-Key": "k2"}), 422)
        assert (await c.post("/v1/messages", json=bad, headers={"Idempotency-Key": "k2"})).status_code == 422
        # deletes replay too
        d1 = await c.delete(f"/v1/memories/{r1.json()['ids'][0]}", headers={"Idempotency-Key": "del-1"})
        d2 = await c.delete(f"/v1/memories/{r1.json()['ids'][0]}", headers={"Idempotency-Key": "del-1"})
        assert d1.status_code == d2.status_code == 200 and d1.json() == d2.json()
        assert_error(await c.post("/v1/messages", json=body, headers={"Idempotency-Key": ""}), 422)


async def test_a_write_whose_response_was_lost_is_not_stored_twice(api: Api, memory: Memory) -> None:
    """The process died after storing but before recording the response: the pending claim goes stale,
    the retry runs again, and the client ids derived from the key deduplicate the events."""
    from datetime import timedelta

    from sqlalchemy import update

    from memsvc.stores.sql_keys import IdempotencyRow, utcnow

    async with api.client(api.acme) as c:
        body = {"messages": DOG, "user_id": "ann", "timestamp": T0}
        first = (await c.post("/v1/messages", json=body, headers={"Idempotency-Key": "lost"})).json()
        with api.keys.engine.begin() as conn:  # as if complete() never ran, long ago
            conn.execute(update(IdempotencyRow).values(state="pending", response=None,
                                                       created_at=utcnow() - timedelta(hours=1)))
        again = await c.post("/v1/messages", json=body, headers={"Idempotency-Key": "lost"})
        assert again.status_code == 200 and again.json() == first
        assert memory.for_tenant("acme").stats("ann")["events"] == 3
        with api.keys.engine.begin() as conn:  # a fresh pending claim means "still running"
            conn.execute(update(IdempotencyRow).values(state="pending", created_at=utcnow()))
        r = await c.post("/v1/messages", json=body, headers={"Idempotency-Key": "lost"})
        assert_error(r, 409, "Conflict")
        assert r.headers["retry-after"] == "1"


# -- reads ------------------------------------------------------------------------------------------
async def test_history_pagination(api: Api) -> None:
    async with api.client(api.acme) as c:
        msgs = [{"role": "user", "content": f"note number {i} about topic {i % 3}"} for i in range(25)]
        ids = await add(c, msgs, session_id="s1")
        await add(c, JOB, session_id="s2")
        seen: list[str] = []
        offset: int | None = 0
        pages = []
        while offset is not None:
            r = await c.get("/v1/history", params={"user_id": "ann", "session_id": "s1", "limit": 10,
                                                    "offset": offset})
            page = HistoryResponse.model_validate(r.json())
            pages.append(len(page.items))
            seen += [i.id for i in page.items]
            offset = page.next_offset
        assert pages == [10, 10, 5] and seen == ids
        assert_error(await c.get("/v1/history", params={"user_id": "ann", "offset": -1}), 422)
        assert_error(await c.get("/v1/history", params={"user_id": "ann", "limit": 1001}), 422)


async def test_search_context_get_delete_and_frames(api: Api) -> None:
    async with api.client(api.acme) as c:
        ids = await add(c, DOG, session_id="s1")
        r = await c.post("/v1/search", json={"query": "golden retriever breed", "user_id": "ann", "limit": 3,
                                            "time_range": ["2023-05-01T00:00:00Z", None]})
        hits = SearchResponse.model_validate(r.json()).hits
        assert hits and "retriever" in hits[0].text and set(hits[0].source_ids) <= set(ids)
        assert r.json()["hits"][0].keys() == HitOut.model_fields.keys()
        r = await c.post("/v1/search", json={"query": "retriever", "user_id": "ann",
                                            "time_range": ["2024-01-01T00:00:00Z", None]})
        assert r.json()["hits"] == []
        ctx = (await c.post("/v1/context", json={"query": "retriever", "user_id": "ann", "budget_tokens": 30})).json()
        assert "retriever" in ctx["context"]
        rec = RecordOut.model_validate((await c.get(f"/v1/memories/{ids[0]}")).json())
        assert rec.kind in ("event", "turn") and rec.user_id == "ann"
        assert (await c.delete(f"/v1/memories/{ids[0]}")).status_code == 200
        assert_error(await c.get(f"/v1/memories/{ids[0]}"), 404, "RecordNotFound")
        assert_error(await c.get("/v1/memories/a%2F..%2Fb"), 404, "RecordNotFound")
        fr = {"stream_id": "cam1", "user_id": "ann", "timestamps": [T0, "2023-05-08T13:56:01Z"],
              "captions": ["a dog runs in the park", "a dog catches a ball"]}
        f_ids = (await c.post("/v1/frames", json=fr)).json()["ids"]
        assert len(f_ids) == 2
        ev = {"events": [{"type": "chat", "user_id": "bob", "text": "I like tea", "timestamp": T0},
                         {"type": "frame", "user_id": "bob", "stream_id": "cam2", "timestamp": T0,
                          "caption": "a cup of tea"}]}
        assert len((await c.post("/v1/events", json=ev)).json()["ids"]) == 2
        rep = await c.post("/v1/consolidate")
        assert rep.status_code == 200 and isinstance(rep.json()["report"], dict)
        assert (await c.get("/v1/stats", params={"user_id": "bob"})).json()["counts"]["events"] == 2


# -- schema, metrics, health ------------------------------------------------------------------------
async def test_openapi_schema_is_served_and_complete(api: Api) -> None:
    async with api.client() as c:
        spec = (await c.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "memsvc"
    want = {("post", "/v1/messages"), ("post", "/v1/search"), ("post", "/v1/context"), ("post", "/v1/frames"),
            ("post", "/v1/events"), ("get", "/v1/history"), ("get", "/v1/memories/{memory_id}"),
            ("delete", "/v1/memories/{memory_id}"), ("delete", "/v1/users/{user_id}"),
            ("post", "/v1/consolidate"), ("get", "/v1/stats"), ("get", "/healthz"), ("get", "/readyz"),
            ("get", "/metrics"), ("post", "/v1/admin/keys"), ("get", "/v1/admin/keys")}
    have = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert want <= have, want - have
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    schemas = spec["components"]["schemas"]
    assert set(schemas["HitOut"]["properties"]) == set(HitOut.model_fields)
    assert set(schemas["SearchRequest"]["required"]) == {"query", "user_id"}
    for path, ops in spec["paths"].items():
        if not path.startswith("/v1"):
            continue
        for op in ops.values():
            assert op.get("security") == [{"HTTPBearer": []}], path
            assert {"401", "422"} <= set(op["responses"]), path
            assert op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


async def test_metrics_and_health(api: Api) -> None:
    async with api.client(api.acme) as c:
        await add(c, DOG)
        await c.post("/v1/search", json={"query": "dog", "user_id": "ann"})
        await c.post("/v1/search", json={"query": "dog"})
        assert (await c.get("/healthz")).json()["status"] == "ok"
        ready = await c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"sql": "ok", "vectors": "ok", "embedder": "ok"}
        m = await c.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    text = m.text
    assert 'memsvc_http_requests_total{method="POST",route="/v1/search",status="200"} 1.0' in text
    assert 'route="/v1/search",status="422"' in text
    assert "memsvc_http_request_duration_seconds_bucket" in text and "memsvc_http_requests_in_flight" in text
    assert "ann" not in text  # no user ids in labels


async def test_rate_limit_per_key(memory: Memory) -> None:
    api = make_api(memory, ApiConfig(rate_per_s=0.001, rate_burst=2))
    async with api.client(api.acme) as a, api.client(api.globex) as g:
        for _ in range(2):
            assert (await a.get("/v1/history", params={"user_id": "u"})).status_code == 200
        r = await a.get("/v1/history", params={"user_id": "u"})
        assert_error(r, 429, "RateLimited")
        assert int(r.headers["retry-after"]) >= 1
        assert (await g.get("/v1/history", params={"user_id": "u"})).status_code == 200  # per key
