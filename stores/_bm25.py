"""The BM25 term weighting every lexical backend shares: qdrant-edge's built-in ``Bm25`` model.

Documents become sparse vectors of saturated, length-normalised term frequencies; queries become
their unique terms with weight 1; the index multiplies by IDF at search time (``Modifier.Idf``).
Each level has its own expected length (a turn is ~25 words, an episode a few hundred), which is
what BM25's length normalisation divides by.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from memsvc.exceptions import MissingDependencyError

__all__ = ["DEFAULT_AVG_LEN", "Bm25Terms"]

DEFAULT_AVG_LEN: dict[str, float] = {"turn": 24.0, "episode": 256.0, "summary": 128.0, "semantic": 24.0,
                                     "context": 120.0}


def _edge() -> Any:
    try:
        import qdrant_edge
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependencyError("pip install qdrant-edge-py") from exc
    return qdrant_edge


class Bm25Terms:
    """Sparse BM25 term vectors (English stop words, Snowball stemmer), one model per level."""

    def __init__(self, k: float = 1.2, b: float = 0.75, avg_len: Mapping[str, float] | None = None) -> None:
        self.k = k
        self.b = b
        self.avg_len = {**DEFAULT_AVG_LEN, **(avg_len or {})}
        self._models: dict[float, Any] = {}
        self._lock = threading.Lock()

    def _model(self, avg_len: float) -> Any:
        with self._lock:
            if avg_len not in self._models:
                q = _edge()
                self._models[avg_len] = q.Bm25(q.Bm25Config(k=self.k, b=self.b, avg_len=avg_len, language="english"))
            return self._models[avg_len]

    def document(self, text: str, level: str) -> tuple[list[int], list[float]]:
        """Term ids and weights of a document at ``level``."""
        v = self._model(self.avg_len.get(level, 64.0)).embed_document(text)
        return list(v.indices), list(v.values)

    def query(self, text: str) -> list[int]:
        """Unique term ids of a query."""
        v = self._model(self.avg_len["turn"]).embed_query(text)
        return sorted(set(v.indices))
