"""Embedded VectorStore on qdrant-edge: an in-process Qdrant shard under the data directory.

Payload indexes on tenant/user (tenant-partitioned), session, stream, level and time. The shard starts
with brute-force segments; once ``hnsw_threshold`` points are not yet in an HNSW index, the next write
runs ``optimize()``, which builds it. The engine holds the GIL while it optimizes (30k points: ~12 s on
2 cores), so a background thread would stall the process just the same: consolidation calls
``optimize()`` on its schedule, and the threshold bounds the work left for a write.

Quantization (``int8`` scalar or ``binary``): the engine keeps the float32 vectors and adds a quantized
copy that search scans first, then rescores ``oversampling × k`` candidates with the full vectors
(``rescore=False`` returns the quantized scores). Binary copies are kept for every segment; int8 copies
only for optimized segments (built with the HNSW index at ``hnsw_threshold``), so a shard below it
searches full vectors. ``vector_bytes()`` reports both sizes from the segment files.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memsvc._types import Vector
from memsvc.exceptions import (
    ConfigError,
    EmbeddingError,
    IndexMismatchError,
    MissingDependencyError,
    StoreError,
    StoreUnavailable,
)
from memsvc.stores.base import (
    QUANTIZATIONS,
    Scope,
    VectorFilter,
    VectorPoint,
    check_point_id,
    check_vectors,
    quantized_vector_bytes,
)

__all__ = ["QdrantEdgeVectorStore"]

_VEC = "dense"


def _edge() -> Any:
    try:
        import qdrant_edge
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependencyError("pip install qdrant-edge-py") from exc
    return qdrant_edge


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """Translate engine errors into memsvc store errors."""
    try:
        yield
    except (StoreError, EmbeddingError):
        raise
    except OSError as exc:
        raise StoreUnavailable(f"qdrant-edge I/O failed: {exc}") from exc
    except Exception as exc:
        raise StoreError(f"qdrant-edge failed: {exc}") from exc


class QdrantEdgeVectorStore:
    """VectorStore backed by ``qdrant_edge.EdgeShard`` (one process may open a shard at a time)."""

    def __init__(
        self,
        path: str | Path,
        dim: int = 384,
        quantization: str = "none",
        hnsw_threshold: int = 20_000,
        oversampling: float = 2.0,
        rescore: bool = True,
    ) -> None:
        if quantization not in QUANTIZATIONS:
            raise ConfigError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
        if oversampling < 1.0:
            raise ConfigError(f"oversampling must be >= 1, got {oversampling!r}")
        q = _edge()
        self.dim = dim
        self.path = Path(path)
        self.quantization = quantization
        self.hnsw_threshold = hnsw_threshold
        self.oversampling = oversampling
        self.rescore = rescore
        self._q = q
        with _mapped():
            if (self.path / "edge_config.json").exists() or any(self.path.glob("segments*")):
                self._shard = q.EdgeShard.load(str(self.path))
                stored = self._shard_dim()
                if stored is not None and stored != dim:
                    self._shard.close()
                    raise IndexMismatchError(f"vector shard at {self.path} has dim {stored}, expected {dim}")
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                self._shard = q.EdgeShard.create(str(self.path), self._config())
            # on every open: a process killed while creating the shard left some indexes unmade
            self._create_indexes()

    # -- setup -------------------------------------------------------------------------------------
    def _quantization_config(self) -> Any:
        q = self._q
        if self.quantization == "int8":
            return q.ScalarQuantizationConfig(type=q.ScalarType.Int8, quantile=0.99, always_ram=True)
        if self.quantization == "binary":
            return q.BinaryQuantizationConfig(always_ram=True)
        return None

    def _config(self) -> Any:
        q = self._q
        return q.EdgeConfig(
            vectors={_VEC: q.EdgeVectorParams(size=self.dim, distance=q.Distance.Cosine)},
            quantization_config=self._quantization_config(),
            hnsw_config=q.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000),
            # The engine indexes only segments above indexing_threshold (KB of vectors; default 10 MB,
            # ~6.7k points at 384 dims): align it with hnsw_threshold, or optimize() would do nothing.
            optimizers=q.EdgeOptimizersConfig(indexing_threshold=max(1, self.hnsw_threshold * self.dim * 4 // 1024)),
        )

    def _shard_dim(self) -> int | None:
        # The shard's own config file names the vector size, even while the shard is empty.
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            cfg = json.loads((self.path / "edge_config.json").read_text())
            return int(cfg["vectors"][_VEC]["size"])
        try:
            recs, _ = self._shard.scroll(self._q.ScrollRequest(limit=1, with_payload=False, with_vector=True))
        except Exception:
            return None
        if not recs:
            return None
        vec = recs[0].vector
        return len(vec[_VEC]) if isinstance(vec, dict) and _VEC in vec else None

    def _create_indexes(self) -> None:
        """Create the payload indexes the shard lacks (all of them on a new shard)."""
        q = self._q
        kw_tenant = q.KeywordIndexParams(is_tenant=True)
        have = self.payload_indexes()
        for name, schema in (
            ("tenant", kw_tenant),
            ("user", kw_tenant),
            ("session", q.PayloadSchemaType.Keyword),
            ("stream", q.PayloadSchemaType.Keyword),
            ("level", q.PayloadSchemaType.Keyword),
            ("start", q.PayloadSchemaType.Float),
            ("end", q.PayloadSchemaType.Float),
        ):
            if name not in have:
                self._shard.update(q.UpdateOperation.create_field_index(name, schema))

    def payload_indexes(self) -> set[str]:
        """Payload fields the shard has an index on."""
        return set(self._shard.info().payload_schema)

    # -- filters -----------------------------------------------------------------------------------
    def _filter(self, scope: Scope | None, flt: VectorFilter | None = None) -> Any:
        q = self._q
        must: list[Any] = []
        if scope is not None:
            must += [
                q.FieldCondition(key="tenant", match=q.MatchValue(scope.tenant)),
                q.FieldCondition(key="user", match=q.MatchValue(scope.user)),
            ]
        if flt is not None:
            if flt.levels is not None:
                must.append(q.FieldCondition(key="level", match=q.MatchAny(list(flt.levels))))
            if flt.session is not None:
                must.append(q.FieldCondition(key="session", match=q.MatchValue(flt.session)))
            if flt.stream is not None:
                must.append(q.FieldCondition(key="stream", match=q.MatchValue(flt.stream)))
            if flt.time_from is not None:
                must.append(q.FieldCondition(key="end", range=q.RangeFloat(gte=flt.time_from)))
            if flt.time_to is not None:
                must.append(q.FieldCondition(key="start", range=q.RangeFloat(lte=flt.time_to)))
        return q.Filter(must=must) if must else None

    # -- VectorStore ---------------------------------------------------------------------------------
    def upsert(self, points: Sequence[VectorPoint]) -> None:
        if not points:
            return
        q = self._q
        ids = [check_point_id(p.id) for p in points]
        mat = check_vectors([p.vector for p in points], self.dim)
        batch = [
            q.Point(id=pid, vector={_VEC: row.tolist()}, payload=p.payload())
            for pid, p, row in zip(ids, points, mat, strict=True)
        ]
        with _mapped():
            self._shard.update(q.UpdateOperation.upsert_points(batch))
        self._maybe_optimize()

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            with _mapped():
                self._shard.update(self._q.UpdateOperation.delete_points([check_point_id(i) for i in ids]))

    def delete_scope(self, scope: Scope) -> None:
        with _mapped():
            self._shard.update(self._q.UpdateOperation.delete_points_by_filter(self._filter(scope)))

    def search(
        self, scope: Scope, vectors: np.ndarray, k: int, flt: VectorFilter | None = None
    ) -> list[list[tuple[str, float]]]:
        q = self._q
        mat = check_vectors(vectors, self.dim)
        if k <= 0:
            return [[] for _ in range(mat.shape[0])]
        params = None
        if self.quantization != "none":
            params = q.SearchParams(
                quantization=q.QuantizationSearchParams(rescore=self.rescore, oversampling=self.oversampling)
            )
        f = self._filter(scope, flt)
        reqs = [
            q.QueryRequest(
                limit=k,
                query=q.Query.Nearest(row.tolist(), using=_VEC),
                filter=f,
                with_payload=False,
                params=params,
            )
            for row in mat
        ]
        with _mapped():
            if len(reqs) == 1:
                results = [self._shard.query(reqs[0])]
            else:
                results = self._shard.query_batch(q.QueryBatchRequest(reqs))
        return [[(str(p.id), float(p.score)) for p in res] for res in results]

    def score(self, scope: Scope, vector: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        if not ids:
            return {}
        q = self._q
        row = check_vectors(vector, self.dim)[0]
        keys = sorted({check_point_id(i) for i in ids})
        f = self._filter(scope)
        f = q.Filter(must=[*f.must, q.HasIdCondition(set(keys))])
        params = None
        if self.quantization != "none":  # exact scores: rescore every listed point with its full vector
            params = q.SearchParams(quantization=q.QuantizationSearchParams(rescore=True, oversampling=1.0))
        req = q.QueryRequest(limit=len(keys), query=q.Query.Nearest(row.tolist(), using=_VEC), filter=f,
                             with_payload=False, params=params)
        with _mapped():
            res = self._shard.query(req)
        return {str(p.id): float(p.score) for p in res}

    def fetch(self, ids: Sequence[str]) -> dict[str, Vector]:
        if not ids:
            return {}
        with _mapped():
            recs = self._shard.retrieve([check_point_id(i) for i in ids], with_payload=False, with_vector=True)
        return {str(r.id): np.asarray(r.vector[_VEC], dtype=np.float32) for r in recs}

    def ids(self, scope: Scope | None = None) -> set[str]:
        q = self._q
        out: set[str] = set()
        offset = None
        f = self._filter(scope)
        with _mapped():
            while True:
                recs, offset = self._shard.scroll(
                    q.ScrollRequest(offset=offset, limit=1000, filter=f, with_payload=False, with_vector=False)
                )
                out.update(str(r.id) for r in recs)
                if offset is None:
                    return out

    def count(self, scope: Scope | None = None) -> int:
        with _mapped():
            return int(self._shard.count(self._q.CountRequest(filter=self._filter(scope), exact=True)))

    def flush(self) -> None:
        with _mapped():
            self._shard.flush()

    def close(self) -> None:
        with _mapped():
            self._shard.close()

    # -- HNSW ----------------------------------------------------------------------------------------
    def unindexed(self) -> int:
        """Points not yet covered by an HNSW index."""
        info = self._shard.info()
        return max(0, int(info.points_count) - int(info.indexed_vectors_count))

    def optimize(self) -> bool:
        """Build the HNSW index (and merge segments) now; blocks until done."""
        with _mapped():
            return bool(self._shard.optimize())

    def vector_bytes(self) -> dict[str, float]:
        """Sizes of the vectors held: ``points``; ``float32_bytes`` (full vectors, points × dim × 4, kept
        for rescoring); ``quantized_bytes`` and ``quantized_points``, read from the quantized storage
        files of optimized segments (appendable segments are not counted: binary quantization keeps
        them in preallocated pages); ``quantized_bytes_per_vector`` and ``ratio`` (float32 / quantized)."""
        self.flush()
        points = self.count()
        out: dict[str, float] = {"points": points, "float32_bytes": points * self.dim * 4}
        if self.quantization == "none":
            return out
        qbytes = qpoints = 0
        for seg in (self.path / "segments").glob("*/vector_storage-" + _VEC):
            data, matrix = seg / "quantized.data", seg / "matrix.dat"
            if data.is_file() and matrix.is_file():
                qbytes += data.stat().st_size
                qpoints += (matrix.stat().st_size - 4) // (4 * self.dim)  # 4-byte header, then the rows
        per = qbytes / qpoints if qpoints else float(quantized_vector_bytes(self.quantization, self.dim))
        out.update(quantized_bytes=qbytes, quantized_points=qpoints, quantized_bytes_per_vector=round(per, 2),
                   ratio=round(4 * self.dim / per, 3))
        return out

    def _maybe_optimize(self) -> None:
        if self.unindexed() >= self.hnsw_threshold:
            self.optimize()
