"""VectorStore on qdrant-client: a Qdrant server (service profile), or the client's local mode.

    VectorStore --> QdrantVectorStore

One collection holds every tenant; each point carries ``tenant``/``user`` (keyword indexes with
``is_tenant``, so the server co-locates a tenant's points), ``session``/``stream``/``level`` (keyword)
and ``start``/``end`` (float, POSIX seconds) in its payload, and every query filters by tenant AND user.
Vectors are one named dense vector (cosine). With ``quantization="int8"|"binary"`` the server searches
the quantized copy and rescores ``oversampling × k`` candidates with the full vectors (``rescore=False``:
quantized scores only). ``vector_bytes()`` gives the sizes of the full and the quantized vectors.

Local mode (``path=`` or ``location=":memory:"``) is qdrant-client's pure-Python engine, exact and
single-process: meant for tests and small setups. It ignores payload indexes and search parameters
(and warns about them), so neither is sent to it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from memsvc._types import Vector
from memsvc.exceptions import (
    ConfigError,
    IndexMismatchError,
    MemsvcError,
    MissingDependencyError,
    StoreError,
    StoreUnavailable,
)
from memsvc.stores.base import (
    Scope,
    VectorFilter,
    VectorPoint,
    check_point_id,
    check_vectors,
    quantized_vector_bytes,
)

__all__ = ["QdrantVectorStore"]

_VEC = "dense"
_QUANTIZATIONS = ("none", "int8", "binary")
_RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


def _models() -> Any:
    try:
        from qdrant_client import models
    except ImportError as exc:
        raise MissingDependencyError("pip install memsvc[qdrant]") from exc
    return models


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Translate qdrant-client (HTTP, gRPC, local-mode) errors into memsvc store errors."""
    try:
        yield
    except MemsvcError:
        raise
    except Exception as exc:
        import httpx
        from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        if isinstance(exc, UnexpectedResponse):
            if exc.status_code is None or exc.status_code in _RETRYABLE_HTTP:
                raise StoreUnavailable(f"qdrant {what} failed: {exc}") from exc
            raise StoreError(f"qdrant {what} failed: {exc}") from exc
        if isinstance(exc, ResponseHandlingException):  # wraps transport errors, and unparsable replies
            cause = exc.source
            if isinstance(cause, (httpx.TransportError, OSError, TimeoutError)):
                raise StoreUnavailable(f"qdrant {what} failed: {cause!r}") from exc
            raise StoreError(f"qdrant {what}: unexpected reply: {cause}") from exc
        if isinstance(exc, (ResourceExhaustedResponse, OSError, TimeoutError)):
            raise StoreUnavailable(f"qdrant {what} failed: {exc}") from exc
        if _is_unavailable_rpc(exc):
            raise StoreUnavailable(f"qdrant {what} failed: {exc}") from exc
        raise StoreError(f"qdrant {what} failed: {exc}") from exc


def _is_unavailable_rpc(exc: Exception) -> bool:
    try:
        import grpc
    except ImportError:  # pragma: no cover - grpcio is a qdrant-client dependency
        return False
    if not isinstance(exc, grpc.RpcError) or not hasattr(exc, "code"):
        return False
    return exc.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )


class QdrantVectorStore:
    """VectorStore on one Qdrant collection, through ``qdrant_client.QdrantClient``.

    Give exactly one of ``url`` (a server), ``path`` (local mode, on disk) or ``location``
    (``":memory:"`` for local mode in memory, or a server URL). ``client_options`` go to
    ``QdrantClient`` unchanged (``timeout``, ``prefer_grpc``, ``https``, ...); local mode takes none.
    ``scroll_page`` is how many ids one scroll request fetches.
    """

    def __init__(
        self,
        dim: int = 384,
        collection: str = "memsvc",
        url: str | None = None,
        path: str | None = None,
        location: str | None = None,
        api_key: str | None = None,
        quantization: str = "none",
        oversampling: float = 2.0,
        rescore: bool = True,
        scroll_page: int = 1000,
        **client_options: Any,
    ) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"dim must be a positive integer, got {dim!r}")
        if quantization not in _QUANTIZATIONS:
            raise ConfigError(
                f"quantization must be one of {', '.join(_QUANTIZATIONS)}, got {quantization!r}"
            )
        if oversampling < 1.0:
            raise ConfigError(f"oversampling must be >= 1, got {oversampling!r}")
        if scroll_page < 1:
            raise ConfigError(f"scroll_page must be >= 1, got {scroll_page!r}")
        if sum(x is not None for x in (url, path, location)) != 1:
            raise ConfigError("give exactly one of url (a Qdrant server), path or location=':memory:'")
        self.local = path is not None or location == ":memory:"
        if self.local and client_options:
            raise ConfigError(f"options {sorted(client_options)} apply to a Qdrant server, not to local mode")
        self.dim = dim
        self.collection = collection
        self.quantization = quantization
        self.oversampling = oversampling
        self.rescore = rescore
        self.scroll_page = scroll_page
        self._m = _models()
        from qdrant_client import QdrantClient

        # Local mode is not thread-safe (SQLite underneath); its calls are serialised by our lock.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.local else contextlib.nullcontext()
        )
        if self.local:
            client_options["force_disable_check_same_thread"] = True
        with _mapped("connect"):
            self._client = QdrantClient(
                url=url, path=path, location=location, api_key=api_key, **client_options
            )
        try:
            self._open_collection()
        except BaseException:
            self._client.close()
            raise

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[Any]:
        with self._lock, _mapped(what):
            yield self._client

    # -- setup -------------------------------------------------------------------------------------
    def _open_collection(self) -> None:
        with self._call("open collection") as c:
            exists = c.collection_exists(self.collection)
        if not exists:
            try:
                self._create_collection()
            except StoreError:
                with self._call("open collection") as c:
                    if not c.collection_exists(self.collection):  # not lost to a concurrent creator
                        raise
        self._check_collection()

    def _quantization_config(self) -> Any:
        m = self._m
        if self.quantization == "int8":
            return m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=0.99, always_ram=True)
            )
        if self.quantization == "binary":
            return m.BinaryQuantization(binary=m.BinaryQuantizationConfig(always_ram=True))
        return None

    def _create_collection(self) -> None:
        m = self._m
        with self._call("create collection") as c:
            c.create_collection(
                self.collection,
                vectors_config={_VEC: m.VectorParams(size=self.dim, distance=m.Distance.COSINE)},
                quantization_config=self._quantization_config(),
            )
            if self.local:
                return
            tenant = m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True)
            for name, schema in (
                ("tenant", tenant),
                ("user", tenant),
                ("session", m.PayloadSchemaType.KEYWORD),
                ("stream", m.PayloadSchemaType.KEYWORD),
                ("level", m.PayloadSchemaType.KEYWORD),
                ("start", m.PayloadSchemaType.FLOAT),
                ("end", m.PayloadSchemaType.FLOAT),
            ):
                c.create_payload_index(self.collection, name, field_schema=schema, wait=True)

    def _check_collection(self) -> None:
        with self._call("read collection") as c:
            info = c.get_collection(self.collection)
        vectors = info.config.params.vectors
        params = vectors.get(_VEC) if isinstance(vectors, dict) else None
        if params is None:
            raise IndexMismatchError(f"collection {self.collection!r} has no dense vector named {_VEC!r}")
        if params.size != self.dim:
            raise IndexMismatchError(
                f"collection {self.collection!r} holds vectors of size {params.size}, expected {self.dim}"
            )
        if params.distance != self._m.Distance.COSINE:
            raise IndexMismatchError(
                f"collection {self.collection!r} uses {params.distance} distance, not cosine"
            )

    # -- filters -----------------------------------------------------------------------------------
    def _filter(self, scope: Scope | None, flt: VectorFilter | None = None) -> Any:
        m = self._m
        must: list[Any] = []
        if scope is not None:
            must += [
                m.FieldCondition(key="tenant", match=m.MatchValue(value=scope.tenant)),
                m.FieldCondition(key="user", match=m.MatchValue(value=scope.user)),
            ]
        if flt is not None:
            if flt.levels is not None:
                must.append(m.FieldCondition(key="level", match=m.MatchAny(any=list(flt.levels))))
            if flt.session is not None:
                must.append(m.FieldCondition(key="session", match=m.MatchValue(value=flt.session)))
            if flt.stream is not None:
                must.append(m.FieldCondition(key="stream", match=m.MatchValue(value=flt.stream)))
            if flt.time_from is not None:
                must.append(m.FieldCondition(key="end", range=m.Range(gte=flt.time_from)))
            if flt.time_to is not None:
                must.append(m.FieldCondition(key="start", range=m.Range(lte=flt.time_to)))
        return m.Filter(must=must) if must else None

    # -- VectorStore ---------------------------------------------------------------------------------
    def upsert(self, points: Sequence[VectorPoint]) -> None:
        if not points:
            return
        m = self._m
        ids = [check_point_id(p.id) for p in points]
        mat = check_vectors([p.vector for p in points], self.dim)
        batch = [
            m.PointStruct(id=pid, vector={_VEC: row.tolist()}, payload=p.payload())
            for pid, p, row in zip(ids, points, mat, strict=True)
        ]
        with self._call("upsert") as c:
            c.upsert(self.collection, points=batch, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        keys = [check_point_id(i) for i in ids]
        if keys:
            with self._call("delete") as c:
                c.delete(self.collection, points_selector=self._m.PointIdsList(points=keys), wait=True)

    def delete_scope(self, scope: Scope) -> None:
        selector = self._m.FilterSelector(filter=self._filter(scope))
        with self._call("delete scope") as c:
            c.delete(self.collection, points_selector=selector, wait=True)

    def search(
        self, scope: Scope, vectors: np.ndarray, k: int, flt: VectorFilter | None = None
    ) -> list[list[tuple[str, float]]]:
        m = self._m
        mat = check_vectors(vectors, self.dim)
        if k <= 0 or mat.shape[0] == 0 or (flt is not None and flt.levels is not None and not flt.levels):
            return [[] for _ in range(mat.shape[0])]
        params = None
        if self.quantization != "none" and not self.local:
            params = m.SearchParams(
                quantization=m.QuantizationSearchParams(rescore=self.rescore, oversampling=self.oversampling)
            )
        f = self._filter(scope, flt)
        reqs = [
            m.QueryRequest(
                query=row.tolist(), using=_VEC, filter=f, limit=k, params=params, with_payload=False
            )
            for row in mat
        ]
        with self._call("search") as c:
            results = c.query_batch_points(self.collection, requests=reqs)
        return [[(str(p.id), float(p.score)) for p in res.points] for res in results]

    def score(self, scope: Scope, vector: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        if not ids:
            return {}
        m = self._m
        row = check_vectors(vector, self.dim)[0]
        keys = sorted({check_point_id(i) for i in ids})
        f = self._filter(scope)
        f = m.Filter(must=[*f.must, m.HasIdCondition(has_id=keys)])
        params = None
        if self.quantization != "none" and not self.local:  # exact: rescore each listed point
            params = m.SearchParams(quantization=m.QuantizationSearchParams(rescore=True, oversampling=1.0))
        with self._call("score") as c:
            res = c.query_points(self.collection, query=row.tolist(), using=_VEC, query_filter=f, limit=len(keys),
                                 search_params=params, with_payload=False)
        return {str(p.id): float(p.score) for p in res.points}

    def fetch(self, ids: Sequence[str]) -> dict[str, Vector]:
        keys = [check_point_id(i) for i in ids]
        if not keys:
            return {}
        with self._call("fetch") as c:
            recs = c.retrieve(self.collection, ids=keys, with_payload=False, with_vectors=[_VEC])
        return {str(r.id): np.asarray(r.vector[_VEC], dtype=np.float32) for r in recs}

    def ids(self, scope: Scope | None = None) -> set[str]:
        out: set[str] = set()
        offset = None
        f = self._filter(scope)
        with self._call("scroll") as c:
            while True:
                recs, offset = c.scroll(
                    self.collection,
                    scroll_filter=f,
                    limit=self.scroll_page,
                    offset=offset,
                    with_payload=False,
                    with_vectors=False,
                )
                out.update(str(r.id) for r in recs)
                if offset is None:
                    return out

    def count(self, scope: Scope | None = None) -> int:
        with self._call("count") as c:
            return int(c.count(self.collection, count_filter=self._filter(scope), exact=True).count)

    def vector_bytes(self) -> dict[str, float]:
        """``points``, ``float32_bytes`` (points × dim × 4) and, when quantized, ``quantized_bytes`` from
        Qdrant's storage layout (``stores.base.quantized_vector_bytes``, measured on the same engine in
        qdrant-edge): a server reports no file sizes."""
        points = self.count()
        out: dict[str, float] = {"points": points, "float32_bytes": points * self.dim * 4}
        if self.quantization != "none":
            per = quantized_vector_bytes(self.quantization, self.dim)
            out.update(quantized_bytes=points * per, quantized_points=points, quantized_bytes_per_vector=per,
                       ratio=round(4 * self.dim / per, 3))
        return out

    def flush(self) -> None:
        return None  # every write above waits until it is applied (and local mode saves on write)

    def close(self) -> None:
        with self._call("close") as c:
            c.close()
