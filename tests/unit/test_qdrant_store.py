"""QdrantVectorStore against a Qdrant *server*, faked at the HTTP wire (no server runs in tests).

The conformance suite runs this backend in qdrant-client's local mode, which has no payload indexes,
no quantization and no network. What only a server sees is checked here: the collection and index
definitions sent, the search parameters, and how HTTP and transport failures are translated. The fake
is an ``httpx.MockTransport`` (the client's own HTTP layer runs unchanged) answering like Qdrant's REST
API for one collection.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import httpx
import numpy as np
import pytest

from memsvc.exceptions import (
    ConfigError,
    IndexMismatchError,
    MissingDependencyError,
    StoreError,
    StoreUnavailable,
)
from memsvc.stores import Scope, VectorFilter, VectorPoint
from memsvc.stores.qdrant import QdrantVectorStore

DIM = 8
SCOPE = Scope("tenant-a", "alice")


def _ok(result: Any) -> httpx.Response:
    return httpx.Response(200, json={"result": result, "status": "ok", "time": 0.0})


class FakeQdrantServer:
    """Enough of Qdrant's REST API for one store: records every request, answers like a server."""

    def __init__(self, vectors: dict[str, Any] | None = None) -> None:
        self.vectors = vectors  # an existing collection's vectors config, or None for no collection
        self.requests: list[tuple[str, str, Any]] = []
        self.queries: list[str] = []
        self.fail_with: httpx.Response | Exception | None = None
        self.lose_create_race = False
        self.points = 0

    def sent(self, method: str, suffix: str) -> list[Any]:
        return [body for m, path, body in self.requests if m == method and path.endswith(suffix)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.requests.append((request.method, path, body))
        self.queries.append(request.url.query.decode())
        if self.fail_with is not None:
            if isinstance(self.fail_with, Exception):
                raise self.fail_with
            return self.fail_with
        if path.endswith("/exists"):
            return _ok({"exists": self.vectors is not None})
        if request.method == "PUT" and path == "/collections/memsvc":
            if self.lose_create_race:
                self.vectors = body["vectors"]
                return httpx.Response(409, json={"status": {"error": "Collection `memsvc` already exists!"}})
            self.vectors = body["vectors"]
            return _ok(True)
        if request.method == "GET" and path == "/collections/memsvc":
            if self.vectors is None:
                return httpx.Response(404, json={"status": {"error": "Not found"}})
            return _ok(self._info())
        if path.endswith("/index") or path.endswith("/points") and request.method == "PUT":
            return _ok({"operation_id": 1, "status": "completed"})
        if path.endswith("/points/delete"):
            return _ok({"operation_id": 2, "status": "completed"})
        if path.endswith("/points/query/batch"):
            return _ok([{"points": []} for _ in body["searches"]])
        if path.endswith("/points/count"):
            return _ok({"count": self.points})
        if path.endswith("/points/scroll"):
            return _ok({"points": [], "next_page_offset": None})
        return httpx.Response(404, json={"status": {"error": f"no route {request.method} {path}"}})

    def _info(self) -> dict[str, Any]:
        return {
            "status": "green",
            "optimizer_status": "ok",
            "segments_count": 1,
            "points_count": 0,
            "payload_schema": {},
            "config": {
                "params": {"vectors": self.vectors},
                "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
                "optimizer_config": {"default_segment_number": 0, "flush_interval_sec": 5},
            },
        }


def connect(server: FakeQdrantServer, **kw: Any) -> QdrantVectorStore:
    return QdrantVectorStore(
        dim=DIM,
        url="http://qdrant.test:6333",
        check_compatibility=False,
        transport=httpx.MockTransport(server),
        **kw,
    )


def point(scope: Scope = SCOPE) -> VectorPoint:
    return VectorPoint(
        id=str(uuid.uuid4()),
        vector=np.ones(DIM),
        tenant=scope.tenant,
        user=scope.user,
        level="turn",
        start=0,
        end=1,
    )


# -- collection setup --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("quantization", "expected"),
    [
        ("none", None),
        ("int8", {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}),
        ("binary", {"binary": {"always_ram": True}}),
    ],
)
def test_creates_a_cosine_collection_with_quantization(quantization: str, expected: Any) -> None:
    server = FakeQdrantServer()
    connect(server, quantization=quantization).close()
    (body,) = server.sent("PUT", "/collections/memsvc")
    assert body["vectors"] == {"dense": {"size": DIM, "distance": "Cosine"}}
    assert body.get("quantization_config") == expected


def test_creates_payload_indexes_with_tenant_partitioning() -> None:
    server = FakeQdrantServer()
    connect(server).close()
    indexes = {b["field_name"]: b["field_schema"] for b in server.sent("PUT", "/collections/memsvc/index")}
    assert indexes == {
        "tenant": {"type": "keyword", "is_tenant": True},
        "user": {"type": "keyword", "is_tenant": True},
        "session": "keyword",
        "stream": "keyword",
        "level": "keyword",
        "start": "float",
        "end": "float",
    }


def test_opens_an_existing_collection_without_redefining_it() -> None:
    server = FakeQdrantServer(vectors={"dense": {"size": DIM, "distance": "Cosine"}})
    connect(server).close()
    assert server.sent("PUT", "/collections/memsvc") == []
    assert server.sent("PUT", "/index") == []


def test_a_concurrent_creator_winning_the_race_is_fine() -> None:
    server = FakeQdrantServer()
    server.lose_create_race = True
    store = connect(server)
    assert store.count() == 0
    store.close()


@pytest.mark.parametrize(
    "vectors",
    [
        {"dense": {"size": DIM * 2, "distance": "Cosine"}},
        {"dense": {"size": DIM, "distance": "Dot"}},
        {"other": {"size": DIM, "distance": "Cosine"}},
        {"size": DIM, "distance": "Cosine"},  # an unnamed vector
    ],
    ids=["size", "distance", "name", "unnamed"],
)
def test_an_existing_collection_of_another_shape_is_refused(vectors: dict[str, Any]) -> None:
    with pytest.raises(IndexMismatchError):
        connect(FakeQdrantServer(vectors=vectors))


# -- requests ----------------------------------------------------------------------------------------
def _must(flt: dict[str, Any]) -> dict[str, Any]:
    return {c["key"]: c.get("match") or c.get("range") for c in flt["must"]}


def test_every_search_filters_by_tenant_and_user() -> None:
    server = FakeQdrantServer()
    store = connect(server)
    rows = store.search(
        SCOPE, np.ones((2, DIM)), 5, VectorFilter(levels=("episode",), time_from=1.0, time_to=2.0)
    )
    assert rows == [[], []]
    (batch,) = server.sent("POST", "/points/query/batch")
    for req in batch["searches"]:
        assert req["using"] == "dense" and req["limit"] == 5 and req["with_payload"] is False
        assert np.isclose(np.linalg.norm(req["query"]["nearest"]), 1.0)
        assert _must(req["filter"]) == {
            "tenant": {"value": "tenant-a"},
            "user": {"value": "alice"},
            "level": {"any": ["episode"]},
            "end": {"gte": 1.0},
            "start": {"lte": 2.0},
        }
        assert req.get("params") is None
    store.close()


def test_quantized_search_rescores_with_oversampling() -> None:
    server = FakeQdrantServer()
    store = connect(server, quantization="binary", oversampling=3.0)
    store.search(SCOPE, np.ones((1, DIM)), 5)
    (batch,) = server.sent("POST", "/points/query/batch")
    assert batch["searches"][0]["params"]["quantization"] == {"rescore": True, "oversampling": 3.0}
    store.close()


def test_quantized_search_without_rescoring_and_vector_sizes() -> None:
    server = FakeQdrantServer()
    server.points = 1000
    store = connect(server, quantization="int8", rescore=False)
    store.search(SCOPE, np.ones((1, DIM)), 5)
    (batch,) = server.sent("POST", "/points/query/batch")
    assert batch["searches"][0]["params"]["quantization"] == {"rescore": False, "oversampling": 2.0}
    sizes = store.vector_bytes()
    per = -(-DIM // 16) * 16 + 4  # int8 codes padded to 16 bytes + a float correction
    assert sizes == {"points": 1000, "float32_bytes": 1000 * DIM * 4, "quantized_bytes": 1000 * per,
                     "quantized_points": 1000, "quantized_bytes_per_vector": per, "ratio": round(4 * DIM / per, 3)}
    store.close()
    assert set(connect(server).vector_bytes()) == {"points", "float32_bytes"}


def test_writes_wait_and_scope_deletes_filter_by_tenant_and_user() -> None:
    server = FakeQdrantServer()
    store = connect(server)
    p = point()
    store.upsert([p])
    store.delete_scope(SCOPE)
    ((_, path, body),) = [r for r in server.requests if r[0] == "PUT" and r[1].endswith("/points")]
    assert body["points"][0]["payload"] == p.payload()
    assert body["points"][0]["id"] == p.id
    ((_, _, selector),) = [r for r in server.requests if r[1].endswith("/points/delete")]
    assert _must(selector["filter"]) == {"tenant": {"value": "tenant-a"}, "user": {"value": "alice"}}
    writes = [
        q for (_, path, _), q in zip(server.requests, server.queries, strict=True) if path.endswith("/points")
    ]
    writes += [
        q for (_, path, _), q in zip(server.requests, server.queries, strict=True) if "/delete" in path
    ]
    assert len(writes) == 2 and all("wait=true" in q for q in writes)
    store.close()


# -- error translation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (httpx.Response(503, json={"status": {"error": "overloaded"}}), StoreUnavailable),
        (httpx.Response(502, text="bad gateway"), StoreUnavailable),
        (httpx.Response(429, json={"status": {"error": "rate limited"}}), StoreUnavailable),
        (httpx.ConnectError("connection refused"), StoreUnavailable),
        (httpx.ReadTimeout("timed out"), StoreUnavailable),
        (httpx.Response(400, json={"status": {"error": "Wrong input"}}), StoreError),
        (httpx.Response(403, json={"status": {"error": "forbidden"}}), StoreError),
    ],
    ids=["503", "502", "429", "connect", "timeout", "400", "403"],
)
def test_driver_errors_become_store_errors(
    failure: httpx.Response | Exception, error: type[StoreError]
) -> None:
    server = FakeQdrantServer()
    store = connect(server)
    server.fail_with = failure
    for call in (
        lambda: store.upsert([point()]),
        lambda: store.search(SCOPE, np.ones((1, DIM)), 3),
        lambda: store.count(SCOPE),
        lambda: store.ids(SCOPE),
        lambda: store.delete_scope(SCOPE),
    ):
        with pytest.raises(error) as info:
            call()
        assert info.value.__cause__ is not None
        assert type(info.value) is error  # a client error is not reported as retryable
    store.close()


def test_an_unparsable_reply_is_a_store_error_not_retryable() -> None:
    server = FakeQdrantServer()
    store = connect(server)
    server.fail_with = httpx.Response(200, json={"result": {"count": "many"}, "status": "ok", "time": 0})
    with pytest.raises(StoreError) as info:
        store.count()
    assert type(info.value) is StoreError
    store.close()


def test_an_unreachable_server_at_startup_is_unavailable() -> None:
    server = FakeQdrantServer()
    server.fail_with = httpx.ConnectError("connection refused")
    with pytest.raises(StoreUnavailable):
        connect(server)


# -- configuration -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"location": ":memory:", "quantization": "int4"},
        {"location": ":memory:", "oversampling": 0.5},
        {"location": ":memory:", "dim": 0},
        {"location": ":memory:", "scroll_page": 0},
        {"location": ":memory:", "url": "http://qdrant.test:6333"},
        {},
        {"location": ":memory:", "timeout": 3},  # a server option in local mode
    ],
)
def test_bad_configuration_raises_config_error(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("dim", DIM)
    with pytest.raises(ConfigError):
        QdrantVectorStore(**kwargs)


def test_missing_qdrant_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "qdrant_client", None)  # what an uninstalled package looks like
    with pytest.raises(MissingDependencyError, match=r"pip install memsvc\[qdrant\]"):
        QdrantVectorStore(dim=DIM, location=":memory:")
