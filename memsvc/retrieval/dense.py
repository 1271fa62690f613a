"""Dense candidate generation: embed the query, search every level of the user's index."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from memsvc._types import Level
from memsvc.embedders import Embedder
from memsvc.models import Hit
from memsvc.stores import Scope, VectorFilter, VectorStore
from memsvc.stores.sql import SQLRecordStore

__all__ = ["DenseRetriever"]


class DenseRetriever:
    """Cosine search over unit vectors, hydrated from SQL (the truth) with provenance."""

    def __init__(self, sql: SQLRecordStore, vectors: VectorStore, embedder: Embedder, candidates: int = 200,
                 superseded_weight: float = 1.0) -> None:
        self.superseded_weight = superseded_weight
        """Score multiplier for units whose validity ended (``valid_to`` in the past)."""
        self.sql = sql
        self.vectors = vectors
        self.embedder = embedder
        self.candidates = candidates

    def retrieve(self, scope: Scope, query: str, flt: VectorFilter, k: int | None = None) -> list[Hit]:
        """Hits ranked by cosine similarity, best first; ties broken by id for determinism."""
        qv = self.embedder.embed([query])
        found = self.vectors.search(scope, qv, k or self.candidates, flt)[0]
        return self.hydrate(scope, found, "dense")

    def hydrate(self, scope: Scope, found: Sequence[tuple[str, float]], component: str) -> list[Hit]:
        """Turn (id, score) pairs into hits; ids missing in SQL or outside the scope are dropped."""
        ids = [i for i, _ in found]
        rows = self.sql.units(scope, ids)
        srcs = self.sql.sources(list(rows))
        hits = []
        now = datetime.now(UTC)
        for uid, score in found:
            u = rows.get(uid)
            if u is None or u.status in ("superseded", "deleted"):
                continue
            if u.valid_to is not None and u.valid_to <= now:  # a newer fact contradicts it: rank below
                score *= self.superseded_weight
            hits.append(
                Hit(
                    id=u.id, text=u.text, score=score, level=Level(u.level), start_time=u.start_ts,
                    end_time=u.end_ts, source_ids=srcs.get(u.id, []), user_id=u.user_id,
                    session_id=u.session_id, stream_id=u.stream_id, components={component: score},
                    metadata=dict(u.meta or {}),
                )
            )
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits
