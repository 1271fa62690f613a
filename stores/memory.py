"""In-memory reference VectorStore: exact cosine search with numpy (tests, tiny deployments)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from memsvc._types import Vector
from memsvc.stores.base import Scope, VectorFilter, VectorPoint, check_point_id, check_vectors

__all__ = ["InMemoryVectorStore", "matches"]


def matches(payload: dict[str, object], scope: Scope, flt: VectorFilter | None) -> bool:
    """Whether a payload is inside ``scope`` and passes ``flt`` (the reference semantics)."""
    if payload["tenant"] != scope.tenant or payload["user"] != scope.user:
        return False
    if flt is None:
        return True
    if flt.levels is not None and payload["level"] not in flt.levels:
        return False
    if flt.session is not None and payload.get("session") != flt.session:
        return False
    if flt.stream is not None and payload.get("stream") != flt.stream:
        return False
    if flt.time_from is not None and float(payload["end"]) < flt.time_from:  # type: ignore[arg-type]
        return False
    return not (flt.time_to is not None and float(payload["start"]) > flt.time_to)  # type: ignore[arg-type]


class InMemoryVectorStore:
    """Exact search over a dict of points; thread-safe."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self._points: dict[str, tuple[Vector, dict[str, object]]] = {}
        self._lock = threading.Lock()

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        ids = [check_point_id(p.id) for p in points]
        mat = check_vectors([p.vector for p in points], self.dim)
        rows = [(pid, mat[i], p.payload()) for i, (pid, p) in enumerate(zip(ids, points, strict=True))]
        with self._lock:
            for pid, v, payload in rows:
                self._points[pid] = (v, payload)

    def delete(self, ids: Sequence[str]) -> None:
        keys = [check_point_id(i) for i in ids]
        with self._lock:
            for i in keys:
                self._points.pop(i, None)

    def delete_scope(self, scope: Scope) -> None:
        with self._lock:
            for pid in [k for k, (_, p) in self._points.items() if matches(p, scope, None)]:
                del self._points[pid]

    def search(
        self, scope: Scope, vectors: np.ndarray, k: int, flt: VectorFilter | None = None
    ) -> list[list[tuple[str, float]]]:
        q = check_vectors(vectors, self.dim)
        with self._lock:
            items = [(pid, v) for pid, (v, p) in self._points.items() if matches(p, scope, flt)]
        if not items or k <= 0:
            return [[] for _ in range(q.shape[0])]
        ids = [pid for pid, _ in items]
        mat = np.stack([v for _, v in items])
        scores = q @ mat.T
        out = []
        for row in scores:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([(ids[i], float(row[i])) for i in top])
        return out

    def score(self, scope: Scope, vector: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        q = check_vectors(vector, self.dim)[0]
        keys = [check_point_id(i) for i in ids]
        with self._lock:
            got = {i: self._points[i][0] for i in keys if i in self._points and matches(self._points[i][1], scope, None)}
        return {i: float(np.dot(v, q)) for i, v in got.items()}

    def fetch(self, ids: Sequence[str]) -> dict[str, Vector]:
        keys = [check_point_id(i) for i in ids]
        with self._lock:
            return {i: self._points[i][0].copy() for i in keys if i in self._points}

    def ids(self, scope: Scope | None = None) -> set[str]:
        with self._lock:
            return {pid for pid, (_, p) in self._points.items() if scope is None or matches(p, scope, None)}

    def count(self, scope: Scope | None = None) -> int:
        return len(self.ids(scope))

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
