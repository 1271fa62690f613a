"""Stores: the SQL source of truth and the vector index backends (chosen by name)."""

from __future__ import annotations

from typing import Any

from memsvc.registry import Registry
from memsvc.stores.base import (
    LexicalDoc,
    LexicalIndex,
    Scope,
    VectorFilter,
    VectorPoint,
    VectorStore,
    check_point_id,
    check_vectors,
    normalize_rows,
)
from memsvc.stores.lexical_memory import InMemoryLexicalIndex
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


LEXICAL_INDEXES: Registry[LexicalIndex] = Registry("lexical index")
LEXICAL_INDEXES.register("memory")(InMemoryLexicalIndex)


@LEXICAL_INDEXES.register("qdrant-edge")
def _lexical_edge(**options: Any) -> LexicalIndex:
    from memsvc.stores.lexical_edge import QdrantEdgeLexicalIndex

    return QdrantEdgeLexicalIndex(**options)


__all__ = [
    "LEXICAL_INDEXES",
    "VECTOR_STORES",
    "InMemoryLexicalIndex",
    "InMemoryVectorStore",
    "LexicalDoc",
    "LexicalIndex",
    "Scope",
    "VectorFilter",
    "VectorPoint",
    "VectorStore",
    "check_point_id",
    "check_vectors",
    "normalize_rows",
]
