"""Embedded LexicalIndex on qdrant-edge: BM25 as sparse vectors with the engine's IDF modifier.

Each unit is stored as a sparse vector of BM25 term weights (``stores._bm25``) in its own shard
(``<data_dir>/lexical``); the engine multiplies query terms by IDF computed over the searching user's
documents of the searched level (``IdfParams(corpus=...)``), so statistics never mix users.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from memsvc.exceptions import StoreError, StoreUnavailable
from memsvc.stores._bm25 import Bm25Terms, _edge
from memsvc.stores.base import LexicalDoc, Scope, VectorFilter

__all__ = ["QdrantEdgeLexicalIndex"]

_FIELDS = {"text": "bm25", "context": "ctx"}


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except OSError as exc:
        raise StoreUnavailable(f"qdrant-edge I/O failed: {exc}") from exc
    except Exception as exc:
        raise StoreError(f"qdrant-edge failed: {exc}") from exc


def _pid(i: str) -> str:
    try:
        return str(uuid.UUID(i))
    except (ValueError, TypeError, AttributeError) as exc:
        raise StoreError(f"document ids must be UUID strings, got {i!r}") from exc


class QdrantEdgeLexicalIndex:
    """LexicalIndex backed by a sparse-vector ``qdrant_edge.EdgeShard``."""

    def __init__(
        self, path: str | Path, k: float = 1.2, b: float = 0.75, avg_len: Mapping[str, float] | None = None
    ) -> None:
        q = self._q = _edge()
        self.path = Path(path)
        self.terms = Bm25Terms(k, b, avg_len)
        with _mapped():
            if (self.path / "edge_config.json").exists() or any(self.path.glob("segments*")):
                self._shard = q.EdgeShard.load(str(self.path))
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                cfg = q.EdgeConfig(sparse_vectors={
                    name: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf) for name in _FIELDS.values()})
                self._shard = q.EdgeShard.create(str(self.path), cfg)
            # on every open: a process killed while creating the shard left some indexes unmade
            tenant = q.KeywordIndexParams(is_tenant=True)
            have = self.payload_indexes()
            for name, schema in (
                ("tenant", tenant), ("user", tenant), ("level", q.PayloadSchemaType.Keyword),
                ("session", q.PayloadSchemaType.Keyword), ("stream", q.PayloadSchemaType.Keyword),
                ("start", q.PayloadSchemaType.Float), ("end", q.PayloadSchemaType.Float),
            ):
                if name not in have:
                    self._shard.update(q.UpdateOperation.create_field_index(name, schema))

    def payload_indexes(self) -> set[str]:
        """Payload fields the shard has an index on."""
        return set(self._shard.info().payload_schema)

    def _filter(self, scope: Scope | None, flt: VectorFilter | None = None) -> Any:
        q = self._q
        must: list[Any] = []
        if scope is not None:
            must += [q.FieldCondition(key="tenant", match=q.MatchValue(scope.tenant)),
                     q.FieldCondition(key="user", match=q.MatchValue(scope.user))]
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

    def upsert(self, docs: Sequence[LexicalDoc]) -> None:
        if not docs:
            return
        q = self._q
        points = []
        for d in docs:
            idx, val = self.terms.document(d.text, d.level)
            vec = {_FIELDS["text"]: q.SparseVector(idx, val)}
            if d.context:
                cidx, cval = self.terms.document(d.context, "context")
                vec[_FIELDS["context"]] = q.SparseVector(cidx, cval)
            points.append(q.Point(id=_pid(d.id), vector=vec, payload=d.payload()))
        with _mapped():
            self._shard.update(q.UpdateOperation.upsert_points(points))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            with _mapped():
                self._shard.update(self._q.UpdateOperation.delete_points([_pid(i) for i in ids]))

    def delete_scope(self, scope: Scope) -> None:
        with _mapped():
            self._shard.update(self._q.UpdateOperation.delete_points_by_filter(self._filter(scope)))

    def search(
        self, scope: Scope, queries: Sequence[str], k: int, flt: VectorFilter | None = None, field: str = "text"
    ) -> list[list[tuple[str, float]]]:
        q = self._q
        if field not in _FIELDS:
            raise StoreError(f"unknown lexical field {field!r}; known: {sorted(_FIELDS)}")
        using = _FIELDS[field]
        corpus = self._filter(scope, VectorFilter(levels=flt.levels) if flt is not None else None)
        params = q.SearchParams(idf=q.IdfParams(corpus=corpus))
        f = self._filter(scope, flt)
        out: list[list[tuple[str, float]]] = []
        for text in queries:
            terms = self.terms.query(text)
            if k <= 0 or not terms:
                out.append([])
                continue
            # over-fetch so that ties at the cut are broken by id, as the reference does
            req = q.QueryRequest(limit=k + 32, query=q.Query.Nearest(q.SparseVector(terms, [1.0] * len(terms)), using=using),
                                 filter=f, with_payload=False, params=params)
            with _mapped():
                res = self._shard.query(req)
            hits = [(str(p.id), float(p.score)) for p in res if p.score > 0]
            hits.sort(key=lambda x: (-x[1], x[0]))
            out.append(hits[:k])
        return out

    def ids(self, scope: Scope | None = None) -> set[str]:
        q = self._q
        out: set[str] = set()
        offset = None
        f = self._filter(scope)
        with _mapped():
            while True:
                recs, offset = self._shard.scroll(
                    q.ScrollRequest(offset=offset, limit=1000, filter=f, with_payload=False, with_vector=False))
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
