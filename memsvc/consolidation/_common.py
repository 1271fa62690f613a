"""Helpers shared by the consolidation jobs: deterministic ids, indexing, cascading removal."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from memsvc.config import ConsolidationConfig
from memsvc.stores import Scope, VectorPoint
from memsvc.stores.sql_consolidation import ConsolidationStore
from memsvc.stores.sql_schema import UnitRow

if TYPE_CHECKING:
    from memsvc.compressors.base import Summarizer
    from memsvc.service import MemoryService

__all__ = ["config", "derived_id", "index_units", "remove_units", "store", "summarizer"]

_NS = uuid.UUID("6f1c1d9e-4a7b-5b8e-9c39-2f7c0e5d8a11")


def derived_id(kind: str, *parts: str) -> str:
    """Deterministic id of a derived unit: the same inputs always give the same unit, so a job that
    is killed and runs again merges onto its earlier rows instead of duplicating them."""
    return str(uuid.uuid5(_NS, "|".join((kind, *parts))))


def store(svc: MemoryService) -> ConsolidationStore:
    """The consolidation store on ``svc``'s SQL engine (cached on the service)."""
    st = getattr(svc, "_consolidation_store", None)
    if st is None or st.sql is not svc.sql:
        st = ConsolidationStore(svc.sql)
        svc._consolidation_store = st  # type: ignore[attr-defined]
    return st


def config(svc: MemoryService) -> ConsolidationConfig:
    """The consolidation settings in force for ``svc``'s tenant."""
    return svc.settings.consolidation.for_tenant(str(svc.tenant))


def summarizer(svc: MemoryService, cfg: ConsolidationConfig) -> Summarizer:
    """The configured summarizer, built once per service and config."""
    from memsvc.compressors.summary import SUMMARIZERS

    key = (cfg.summarizer.backend, repr(sorted(cfg.summarizer.options.items())))
    cache: dict[Any, Summarizer] = svc.__dict__.setdefault("_summarizers", {})
    if key not in cache:
        cache[key] = SUMMARIZERS.create(cfg.summarizer.backend, embedder=svc.embedder, **cfg.summarizer.options)
    return cache[key]


def _posix(ts: datetime) -> float:
    return ts.timestamp()


def index_units(svc: MemoryService, units: Sequence[UnitRow], vectors: np.ndarray | None = None) -> int:
    """Embed (unless ``vectors`` are given) and upsert units, then mark them ``indexed``. A crash in
    between leaves them ``pending``, which repair and reconcile index again."""
    units = [u for u in units if u.text and u.index_state != "none"]
    if not units:
        return 0
    vecs = svc.embedder.embed([u.text for u in units]) if vectors is None else vectors
    svc.vectors.upsert([
        VectorPoint(id=u.id, vector=v, tenant=u.tenant_id, user=u.user_id, level=u.level, start=_posix(u.start_ts),
                    end=_posix(u.end_ts), session=u.session_id, stream=u.stream_id)
        for u, v in zip(units, vecs, strict=True)
    ])
    if svc.lexical is not None:
        from memsvc.pipeline import lexical_doc

        svc.lexical.upsert([lexical_doc(u) for u in units])
    svc.sql.set_index_state([u.id for u in units], "indexed")
    return len(units)


def remove_units(svc: MemoryService, scope: Scope, ids: Sequence[str], cause: str = "consolidation") -> int:
    """Delete a user's units and everything derived from them (SQL first, then vectors, then the
    unit listeners)."""
    if not ids:
        return 0
    dead = sorted(svc.sql.descendants(ids, scope))
    svc.sql.delete_units(dead, scope)
    svc.vectors.delete(dead)
    if svc.lexical is not None:
        svc.lexical.delete(dead)
    svc.notify("deleted", scope, dead, cause)
    return len(dead)
