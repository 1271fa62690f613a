"""Storage contracts.

    VectorStore --> InMemoryVectorStore (stores.memory)
                --> QdrantEdgeVectorStore (stores.qdrant_edge, embedded default)
                --> QdrantVectorStore (stores.qdrant, qdrant-client: server or local mode)
    LexicalIndex --> InMemoryLexicalIndex (stores.lexical_memory, the reference)
                 --> QdrantEdgeLexicalIndex (stores.lexical_edge, embedded default)
    SQLRecordStore (stores.sql): the source of truth (SQLAlchemy; SQLite or PostgreSQL)

A vector store is an index of the SQL truth and can be rebuilt from it. Every read is scoped to one
tenant and one user (``Scope``); a store must never return a point of another scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from memsvc._types import Matrix, Vector
from memsvc.exceptions import EmbeddingError, StoreError

__all__ = [
    "LexicalDoc",
    "LexicalIndex",
    "Scope",
    "VectorFilter",
    "VectorPoint",
    "VectorStore",
    "check_point_id",
    "check_vectors",
    "normalize_rows",
    "quantized_vector_bytes",
]

QUANTIZATIONS = ("none", "int8", "binary")


def quantized_vector_bytes(quantization: str, dim: int) -> int:
    """Bytes one vector takes in Qdrant's quantized storage (measured on qdrant-edge's segments):
    int8 stores ``dim`` rounded up to 16 bytes plus a 4-byte float correction, binary one bit per
    dimension in 16-byte words; ``none``: the float32 vector itself."""
    if quantization == "int8":
        return -(-dim // 16) * 16 + 4
    if quantization == "binary":
        return -(-dim // 128) * 16
    if quantization == "none":
        return 4 * dim
    raise StoreError(f"unknown quantization {quantization!r}")


@dataclass(frozen=True, slots=True)
class Scope:
    """Tenant and user every query is restricted to."""

    tenant: str
    user: str


@dataclass(frozen=True, slots=True)
class VectorPoint:
    """A point to index. ``payload`` must hold ``tenant`` and ``user``; times are POSIX seconds."""

    id: str
    vector: Vector
    tenant: str
    user: str
    level: str
    start: float
    end: float
    session: str | None = None
    stream: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """Payload as stored in the index."""
        p: dict[str, Any] = {
            "tenant": self.tenant,
            "user": self.user,
            "level": self.level,
            "start": self.start,
            "end": self.end,
        }
        if self.session is not None:
            p["session"] = self.session
        if self.stream is not None:
            p["stream"] = self.stream
        p.update(self.extra)
        return p


@dataclass(frozen=True, slots=True)
class VectorFilter:
    """Optional restrictions on top of the scope. Times are POSIX seconds; a unit matches a time
    range when its [start, end] overlaps it."""

    levels: tuple[str, ...] | None = None
    session: str | None = None
    stream: str | None = None
    time_from: float | None = None
    time_to: float | None = None


@runtime_checkable
class VectorStore(Protocol):
    """Dense vector index (cosine similarity on L2-normalised float32 vectors of size ``dim``).

    Point ids are UUID strings (canonical lower-case form on the way out); any other id raises
    ``StoreError``. A vector of another size, or one holding NaN/inf, raises ``EmbeddingError`` and
    nothing of that batch is written.
    """

    dim: int

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points by id. Vectors have shape (dim,)."""

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""

    def delete_scope(self, scope: Scope) -> None:
        """Delete every point of one tenant and user."""

    def search(
        self, scope: Scope, vectors: np.ndarray, k: int, flt: VectorFilter | None = None
    ) -> list[list[tuple[str, float]]]:
        """For each query row of ``vectors`` (n, dim): up to ``k`` (id, cosine) pairs, best first,
        only from ``scope``."""

    def fetch(self, ids: Sequence[str]) -> dict[str, Vector]:
        """Stored vectors of the ids that exist."""

    def score(self, scope: Scope, vector: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        """Cosine of one query vector (dim,) with each listed point of ``scope``; ids not stored, or of
        another scope, are left out. (The ranker's exact dense score for candidates found by other
        lists: computed where the vectors live, no vector leaves the index.)"""

    def ids(self, scope: Scope | None = None) -> set[str]:
        """Every point id (of one scope, or all): used by reconcile to find orphans."""

    def count(self, scope: Scope | None = None) -> int:
        """Number of points (of one scope, or all)."""

    def flush(self) -> None:
        """Make writes durable."""

    def close(self) -> None:
        """Release files and connections."""


@dataclass(frozen=True, slots=True)
class LexicalDoc:
    """A unit's text to index for keyword search, with the same scope and filter fields as a
    ``VectorPoint`` (times are POSIX seconds)."""

    id: str
    text: str
    tenant: str
    user: str
    level: str
    start: float
    end: float
    session: str | None = None
    stream: str | None = None
    context: str | None = None
    """Optional second field: the unit with what came just before it (for a turn, the previous
    turns of its session), searched with ``field="context"``."""

    def payload(self) -> dict[str, Any]:
        """Filter fields as stored in the index."""
        p: dict[str, Any] = {"tenant": self.tenant, "user": self.user, "level": self.level,
                             "start": self.start, "end": self.end}
        if self.session is not None:
            p["session"] = self.session
        if self.stream is not None:
            p["stream"] = self.stream
        return p


@runtime_checkable
class LexicalIndex(Protocol):
    """Keyword (BM25) index over unit texts.

    Scores are Okapi BM25: ``sum over query terms t of idf(t) * tf(t, d) * (k + 1) / (tf(t, d) + k *
    (1 - b + b * |d| / avg_len))``, with ``idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))`` where N and n_t
    count the documents of the same scope and level (one user's statistics never shape another's).
    Terms come from one tokenizer shared by every backend (lower-cased words, English stop words
    removed, Snowball-stemmed), so backends agree on scores.
    """

    def upsert(self, docs: Sequence[LexicalDoc]) -> None:
        """Insert or replace documents by id."""

    def delete(self, ids: Sequence[str]) -> None:
        """Delete documents by id; unknown ids are ignored."""

    def delete_scope(self, scope: Scope) -> None:
        """Delete every document of one tenant and user."""

    def search(
        self, scope: Scope, queries: Sequence[str], k: int, flt: VectorFilter | None = None, field: str = "text"
    ) -> list[list[tuple[str, float]]]:
        """For each query: up to ``k`` (id, BM25 score > 0) pairs, best first (equal scores by id), only
        from ``scope`` and ``flt``, over ``field`` (``"text"`` or ``"context"``). IDF statistics come from
        the scope's documents (of ``flt.levels`` when given) that have the field."""

    def ids(self, scope: Scope | None = None) -> set[str]:
        """Every document id (of one scope, or all)."""

    def count(self, scope: Scope | None = None) -> int:
        """Number of documents (of one scope, or all)."""

    def flush(self) -> None:
        """Make writes durable."""

    def close(self) -> None:
        """Release files."""


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (v / norms).astype(np.float32, copy=False)


def check_point_id(pid: object) -> str:
    """``pid`` in canonical UUID form; ``StoreError`` for anything that is not a UUID string."""
    if not isinstance(pid, str):
        raise StoreError(f"point ids must be UUID strings, got {pid!r}")
    try:
        return str(uuid.UUID(pid))
    except ValueError as exc:
        raise StoreError(f"point ids must be UUID strings, got {pid!r}") from exc


def check_vectors(vectors: Sequence[np.ndarray] | np.ndarray, dim: int) -> Matrix:
    """Rows of ``dim`` finite floats, L2-normalised, as an (n, dim) float32 matrix.

    Raises:
        EmbeddingError: a row has another size or holds NaN/inf.
    """
    rows = [vectors] if isinstance(vectors, np.ndarray) and vectors.ndim == 1 else list(vectors)
    out = np.empty((len(rows), dim), dtype=np.float32)
    for i, row in enumerate(rows):
        try:
            v = np.asarray(row, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise EmbeddingError(f"vector {i} is not numeric: {exc}") from exc
        if v.shape[0] != dim or not np.isfinite(v).all():
            raise EmbeddingError(f"vector {i} must be {dim} finite floats, got shape {v.shape}")
        out[i] = v
    return normalize_rows(out)

