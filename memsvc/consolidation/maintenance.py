"""Maintenance jobs: close idle episodes, reconcile SQL with the vector index, recompress old units."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from memsvc.consolidation._common import config, index_units, store
from memsvc.consolidation.decay import compress_unit_text
from memsvc.stores import Scope
from memsvc.tokens import count_tokens

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["close_idle_episodes", "close_idle_user_episodes", "reconcile", "recompress"]


def close_idle_episodes(svc: MemoryService, idle_s: float | None = None, now: datetime | None = None) -> int:
    """Close open episodes whose last turn is older than ``idle_s`` (a chat session that went quiet)."""
    idle = config(svc).idle_close_s if idle_s is None else idle_s
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=idle)
    rows = svc.sql.idle_open_episodes(svc.tenant, cutoff)
    svc.sql.close_episodes([u.id for u in rows])
    svc.ingestor.forget_cache()
    return len(rows)


def close_idle_user_episodes(svc: MemoryService, scope: Scope, now: datetime | None = None) -> int:
    """``close_idle_episodes`` for one user (the first step of a per-user run)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=config(svc).idle_close_s)
    rows = [u for u in svc.sql.idle_open_episodes(scope.tenant, cutoff) if u.user_id == scope.user]
    svc.sql.close_episodes([u.id for u in rows])
    svc.ingestor.forget_cache(scope)
    return len(rows)


def reconcile(svc: MemoryService) -> dict[str, int]:
    """SQL is the truth: index units whose vector is missing or pending, drop vectors SQL lacks."""
    repaired = svc.repair()
    in_sql = svc.sql.live_unit_ids()
    in_index = svc.vectors.ids()
    orphans = sorted(in_index - in_sql)
    svc.vectors.delete(orphans)
    if svc.lexical is not None:
        svc.lexical.delete(orphans)
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


def recompress(svc: MemoryService, scope: Scope, now: datetime | None = None) -> dict[str, int]:
    """Re-compress episodes older than ``recompress_after_days`` at ``recompress_rate`` (once each),
    and let a vector store that supports it re-quantize (``requantize()``)."""
    cfg = config(svc)
    if cfg.recompress_after_days is None:
        return {"recompressed": 0}
    cutoff = (now or datetime.now(UTC)) - timedelta(days=cfg.recompress_after_days)
    st = store(svc)
    done = []
    for u in st.live_units(scope, ["episode"], ["closed"]):
        if u.pinned or u.created_at >= cutoff or (u.meta or {}).get("compressed") or not u.text:
            continue
        text = compress_unit_text(svc, u, cfg.recompress_rate)
        meta = {**(u.meta or {}), "compressed": cfg.recompress_rate}
        st.update_units({u.id: {"text": text, "token_count": count_tokens(text), "meta": meta, "index_state": "stale"}})
        u.text = text
        done.append(u)
    index_units(svc, done)
    svc.notify("changed", scope, [u.id for u in done], "recompress")
    requantize = getattr(svc.vectors, "requantize", None)
    if callable(requantize):
        requantize()
    return {"recompressed": len(done)}
