"""Stores: the SQL source of truth and the vector index backends (chosen by name)."""

from __future__ import annotations

from typing import Any

from memsvc.registry import Registry
from memsvc.stores.base import (
    Scope,
    VectorFilter,
    VectorPoint,
    VectorStore,
    check_point_id,
    check_vectors,
    normalize_rows,
)
from memsvc.stores.memory import InMemoryVectorStore

VECTOR_STORES: Registry[VectorStore] = Registry("vector store", VectorStore)
VECTOR_STORES.register("memory")(InMemoryVectorStore)


@VECTOR_STORES.register("qdrant-edge")
def _qdrant_edge(**options: Any) -> VectorStore:
    from memsvc.stores.qdrant_edge import QdrantEdgeVectorStore

    return QdrantEdgeVectorStore(**options)


@VECTOR_STORES.register("qdrant")
def _qdrant(**options: Any) -> VectorStore:
    from memsvc.stores.qdrant import QdrantVectorStore

    return QdrantVectorStore(**options)


__all__ = [
    "VECTOR_STORES",
    "InMemoryVectorStore",
    "Scope",
    "VectorFilter",
    "VectorPoint",
    "VectorStore",
    "check_point_id",
    "check_vectors",
    "normalize_rows",
]
