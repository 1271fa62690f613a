"""In-memory reference LexicalIndex: exact BM25 over a dict of documents (tests, tiny deployments)."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence

from memsvc.stores._bm25 import Bm25Terms
from memsvc.stores.base import LexicalDoc, Scope, VectorFilter
from memsvc.stores.memory import matches

__all__ = ["InMemoryLexicalIndex"]


class InMemoryLexicalIndex:
    """Exact BM25 with per-scope (and per-level) IDF; thread-safe."""

    def __init__(self, k: float = 1.2, b: float = 0.75, avg_len: Mapping[str, float] | None = None) -> None:
        self.terms = Bm25Terms(k, b, avg_len)
        self._docs: dict[str, tuple[dict[str, dict[int, float]], dict[str, object]]] = {}
        self._lock = threading.Lock()

    def upsert(self, docs: Sequence[LexicalDoc]) -> None:
        rows = []
        for d in docs:
            fields = {"text": self._weights(d.text, d.level)}
            if d.context:
                fields["context"] = self._weights(d.context, "context")
            rows.append((d.id, fields, d.payload()))
        with self._lock:
            for did, w, p in rows:
                self._docs[did] = (w, p)

    def _weights(self, text: str, level: str) -> dict[int, float]:
        idx, val = self.terms.document(text, level)
        weights: dict[int, float] = {}
        for i, v in zip(idx, val, strict=True):
            weights[i] = weights.get(i, 0.0) + v
        return weights

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            for i in ids:
                self._docs.pop(i, None)

    def delete_scope(self, scope: Scope) -> None:
        with self._lock:
            for did in [k for k, (_, p) in self._docs.items() if matches(p, scope, None)]:
                del self._docs[did]

    def search(
        self, scope: Scope, queries: Sequence[str], k: int, flt: VectorFilter | None = None, field: str = "text"
    ) -> list[list[tuple[str, float]]]:
        corpus_flt = VectorFilter(levels=flt.levels) if flt is not None and flt.levels is not None else None
        with self._lock:
            corpus = [(did, f[field]) for did, (f, p) in self._docs.items()
                      if field in f and matches(p, scope, corpus_flt)]
            allowed = {did for did, (_, p) in self._docs.items() if matches(p, scope, flt)}
        n = len(corpus)
        out: list[list[tuple[str, float]]] = []
        for q in queries:
            terms = self.terms.query(q)
            if k <= 0 or not terms or not allowed:
                out.append([])
                continue
            df = {t: sum(1 for _, w in corpus if t in w) for t in terms}
            idf = {t: math.log(1.0 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items() if c}
            scored = []
            for did, w in corpus:
                if did not in allowed:
                    continue
                s = sum(idf[t] * w[t] for t in idf if t in w)
                if s > 0:
                    scored.append((did, s))
            scored.sort(key=lambda x: (-x[1], x[0]))
            out.append(scored[:k])
        return out

    def ids(self, scope: Scope | None = None) -> set[str]:
        with self._lock:
            return {did for did, (_, p) in self._docs.items() if scope is None or matches(p, scope, None)}

    def count(self, scope: Scope | None = None) -> int:
        return len(self.ids(scope))

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
