"""Consolidation jobs as plain functions (the Celery tasks and the embedded scheduler call these).

First version: close idle episodes, repair the SQL<->vector index, build the HNSW index. Summaries,
merging, decay and recompression plug in here (consolidation issue).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["close_idle_episodes", "consolidate", "reconcile"]


def close_idle_episodes(svc: MemoryService, idle_s: float = 1800.0, now: datetime | None = None) -> int:
    """Close open episodes whose last turn is older than ``idle_s`` (a chat session that went quiet)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=idle_s)
    rows = svc.sql.idle_open_episodes(svc.tenant, cutoff)
    svc.sql.close_episodes([u.id for u in rows])
    svc.ingestor.forget_cache()
    return len(rows)


def reconcile(svc: MemoryService) -> dict[str, int]:
    """SQL is the truth: index units whose vector is missing or pending, drop vectors SQL lacks."""
    repaired = svc.repair()
    in_sql = svc.sql.live_unit_ids()
    in_index = svc.vectors.ids()
    orphans = sorted(in_index - in_sql)
    svc.vectors.delete(orphans)
    missing = sorted(in_sql - in_index)
    if svc.lexical is not None:
        in_lexical = svc.lexical.ids()
        lex_orphans = sorted(in_lexical - in_sql)
        svc.lexical.delete(lex_orphans)
        orphans += lex_orphans
        missing = sorted(set(missing) | (in_sql - in_lexical))
    if missing:
        svc.sql.set_index_state(missing, "pending")
        repaired += svc.repair()
    return {"reindexed": repaired, "orphans_removed": len(orphans)}


def consolidate(svc: MemoryService, now: datetime | None = None) -> dict[str, Any]:
    """Run every consolidation job once, now."""
    report: dict[str, Any] = {"episodes_closed": close_idle_episodes(svc, now=now)}
    report.update(reconcile(svc))
    optimize = getattr(svc.vectors, "optimize", None)
    report["index_optimized"] = bool(optimize()) if callable(optimize) else False
    return report
