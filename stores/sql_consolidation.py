"""SQL reads and writes of the consolidation jobs (``memsvc.consolidation``), over ``SQLRecordStore``.

Every write here is one transaction, so a job killed mid-way leaves either all or none of a step;
derived units have deterministic ids, so a step that runs again merges onto the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from memsvc.stores.base import Scope
from memsvc.stores.sql import SQLRecordStore, _chunks
from memsvc.stores.sql_schema import (
    ConsolidationStateRow,
    EventRow,
    UnitFactRow,
    UnitLinkRow,
    UnitRow,
    UnitSourceRow,
)

__all__ = ["ConsolidationStore"]


def _scoped(q: Any, scope: Scope) -> Any:
    return q.where(UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user)


class ConsolidationStore:
    """Queries and transactional writes for consolidation, on the same engine as ``sql``."""

    def __init__(self, sql: SQLRecordStore) -> None:
        self.sql = sql
        self.session = sql.session

    # -- users and progress marks ------------------------------------------------------------------
    def tenants(self) -> list[str]:
        with self.session() as s:
            return sorted(s.scalars(select(UnitRow.tenant_id).distinct()))

    def users(self, tenant: str) -> list[str]:
        with self.session() as s:
            return sorted(s.scalars(select(UnitRow.user_id).where(UnitRow.tenant_id == tenant).distinct()))

    def fingerprint(self, scope: Scope) -> str:
        """Changes whenever the user's events or units change (decides whether a run has work)."""
        with self.session() as s:
            seq = s.scalar(select(func.max(EventRow.seq)).where(
                EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user))
            n, upd = s.execute(_scoped(select(func.count(), func.max(UnitRow.updated_at)), scope)).one()
        return f"{seq}|{n}|{upd.isoformat() if upd else None}"

    def get_state(self, tenant: str, user: str, job: str) -> tuple[str | None, dict[str, Any]]:
        with self.session() as s:
            row = s.get(ConsolidationStateRow, (tenant, user, job))
            return (row.mark, dict(row.info or {})) if row else (None, {})

    @staticmethod
    def put_state(s: Session, tenant: str, user: str, job: str, mark: str | None, info: dict[str, Any] | None = None) -> None:
        s.merge(ConsolidationStateRow(tenant_id=tenant, user_id=user, job=job, mark=mark, info=info or {}))

    def set_state(self, tenant: str, user: str, job: str, mark: str | None, info: dict[str, Any] | None = None) -> None:
        with self.session() as s:
            self.put_state(s, tenant, user, job, mark, info)

    def clear_state(self, scope: Scope) -> None:
        with self.session() as s:
            s.execute(delete(ConsolidationStateRow).where(
                ConsolidationStateRow.tenant_id == scope.tenant, ConsolidationStateRow.user_id == scope.user))

    # -- generic unit access -------------------------------------------------------------------------
    def live_units(self, scope: Scope, levels: Sequence[str], status: Sequence[str] | None = None) -> list[UnitRow]:
        with self.session() as s:
            q = _scoped(select(UnitRow), scope).where(UnitRow.level.in_(list(levels)), UnitRow.deleted_at.is_(None))
            if status is not None:
                q = q.where(UnitRow.status.in_(list(status)))
            return list(s.scalars(q.order_by(UnitRow.start_ts, UnitRow.id)))

    def children(self, parent_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        with self.session() as s:
            for chunk in _chunks(list(parent_ids)):
                q = select(UnitLinkRow.parent_id, UnitLinkRow.child_id).where(UnitLinkRow.parent_id.in_(chunk))
                for p, c in s.execute(q.order_by(UnitLinkRow.parent_id, UnitLinkRow.child_id)):
                    out[p].append(c)
        return dict(out)

    def parents(self, child_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        with self.session() as s:
            for chunk in _chunks(list(child_ids)):
                q = select(UnitLinkRow.child_id, UnitLinkRow.parent_id).where(UnitLinkRow.child_id.in_(chunk))
                for c, p in s.execute(q.order_by(UnitLinkRow.child_id, UnitLinkRow.parent_id)):
                    out[c].append(p)
        return dict(out)

    def write_derived(
        self,
        units: Iterable[UnitRow] = (),
        sources: Iterable[UnitSourceRow] = (),
        links: Iterable[UnitLinkRow] = (),
        delete_ids: Sequence[str] = (),
        check: Callable[[Session], bool] | None = None,
        state: tuple[str, str, str, str | None, dict[str, Any]] | None = None,
    ) -> bool:
        """In one transaction: run ``check`` (False aborts, nothing written), delete ``delete_ids``,
        merge units by id, replace their provenance rows and store a progress mark."""
        units = list(units)
        with self.session() as s:
            if check is not None and not check(s):
                return False
            for chunk in _chunks(list(delete_ids)):
                s.execute(delete(UnitRow).where(UnitRow.id.in_(chunk)))
            for u in units:
                s.merge(u)
            s.flush()
            ids = [u.id for u in units]
            for chunk in _chunks(ids):
                s.execute(delete(UnitSourceRow).where(UnitSourceRow.unit_id.in_(chunk)))
                s.execute(delete(UnitLinkRow).where(UnitLinkRow.parent_id.in_(chunk)))
            s.add_all(list(sources))
            s.add_all(list(links))
            if state is not None:
                self.put_state(s, *state)
        return True

    def write_many(self, items: Sequence[tuple[UnitRow, list[UnitSourceRow], list[UnitLinkRow], Callable[[Session], bool]]]
                   ) -> list[UnitRow]:
        """Several derived units in one transaction; an item whose check fails is skipped. Returns the
        units written."""
        done: list[UnitRow] = []
        with self.session() as s:
            for unit, sources, links, check in items:
                if not check(s):
                    continue
                s.merge(unit)
                s.flush()
                s.execute(delete(UnitSourceRow).where(UnitSourceRow.unit_id == unit.id))
                s.execute(delete(UnitLinkRow).where(UnitLinkRow.parent_id == unit.id))
                s.add_all(sources)
                s.add_all(links)
                done.append(unit)
        return done

    def update_units(self, values: dict[str, dict[str, Any]]) -> None:
        """Set columns per unit id (one transaction)."""
        with self.session() as s:
            for uid, cols in values.items():
                s.execute(update(UnitRow).where(UnitRow.id == uid).values(**cols))

    # -- exact duplicates ------------------------------------------------------------------------------
    def unhashed(self, scope: Scope, level: str, limit: int = 20_000) -> list[UnitRow]:
        with self.session() as s:
            q = _scoped(select(UnitRow), scope).where(
                UnitRow.level == level, UnitRow.content_hash.is_(None), UnitRow.deleted_at.is_(None))
            return list(s.scalars(q.limit(limit)))

    def set_hashes(self, hashes: dict[str, str]) -> None:
        stmt = update(UnitRow.__table__).where(UnitRow.__table__.c.id == bindparam("uid")).values(
            content_hash=bindparam("h"))
        with self.session() as s:
            s.connection().execute(stmt, [{"uid": u, "h": h} for u, h in hashes.items()])

    def duplicate_turns(self, scope: Scope) -> list[list[str]]:
        """Groups of live turn unit ids sharing a content hash, each in arrival (seq) order."""
        with self.session() as s:
            dup = _scoped(select(UnitRow.content_hash), scope).where(
                UnitRow.level == "turn", UnitRow.deleted_at.is_(None), UnitRow.content_hash.is_not(None)
            ).group_by(UnitRow.content_hash).having(func.count() > 1)
            q = (
                select(UnitRow.content_hash, UnitRow.id)
                .join(EventRow, EventRow.id == UnitRow.id)
                .where(UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user,
                       UnitRow.level == "turn", UnitRow.deleted_at.is_(None), UnitRow.content_hash.in_(dup))
                .order_by(UnitRow.content_hash, EventRow.seq)
            )
            groups: dict[str, list[str]] = defaultdict(list)
            for h, uid in s.execute(q):
                groups[h].append(uid)
        return [g for _, g in sorted(groups.items())]

    # -- facts -----------------------------------------------------------------------------------------
    def turns_after(self, scope: Scope, seq: int, limit: int = 5_000) -> list[tuple[str, int, str | None, str | None, str, datetime]]:
        """(unit id, seq, speaker name, role, event text, time) of live turns after ``seq``."""
        with self.session() as s:
            q = (
                select(UnitRow.id, EventRow.seq, EventRow.name, EventRow.role, EventRow.text, EventRow.ts)
                .join(EventRow, EventRow.id == UnitRow.id)
                .where(UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user, UnitRow.level == "turn",
                       UnitRow.deleted_at.is_(None), EventRow.seq > seq)
                .order_by(EventRow.seq).limit(limit)
            )
            return [(u, q_, n, r, t or "", ts) for u, q_, n, r, t, ts in s.execute(q)]

    def max_seq(self, scope: Scope) -> int:
        return self.sql.max_seq(scope)

    def facts(self, scope: Scope, keys: Iterable[tuple[str, str]] | None = None) -> list[UnitFactRow]:
        """Live facts of the user (optionally only these (subject, attribute) keys), oldest first."""
        with self.session() as s:
            q = select(UnitFactRow).join(UnitRow, UnitRow.id == UnitFactRow.unit_id).where(
                UnitFactRow.tenant_id == scope.tenant, UnitFactRow.user_id == scope.user, UnitRow.deleted_at.is_(None))
            rows = list(s.scalars(q.order_by(UnitFactRow.observed_at, UnitFactRow.seq, UnitFactRow.unit_id)))
        if keys is None:
            return rows
        want = set(keys)
        return [r for r in rows if (r.subject, r.attribute) in want]

    # -- summaries -------------------------------------------------------------------------------------
    def unsummarized_episodes(self, scope: Scope, limit: int = 10_000) -> list[UnitRow]:
        """Closed live episodes no summary links to yet, oldest first."""
        parent = aliased(UnitRow)
        has_summary = exists(
            select(UnitLinkRow.parent_id).join(parent, parent.id == UnitLinkRow.parent_id)
            .where(UnitLinkRow.child_id == UnitRow.id, parent.level == "summary")
        )
        with self.session() as s:
            q = _scoped(select(UnitRow), scope).where(
                UnitRow.level == "episode", UnitRow.status == "closed", UnitRow.deleted_at.is_(None),
                UnitRow.stream_id.is_(None), ~has_summary)
            return list(s.scalars(q.order_by(UnitRow.start_ts, UnitRow.id).limit(limit)))

    def summarized_indexed_episodes(self, scope: Scope) -> list[str]:
        """Episodes still in the index although a summary (itself indexed, or empty) stands for them."""
        parent = aliased(UnitRow)
        q = (
            select(UnitRow.id).join(UnitLinkRow, UnitLinkRow.child_id == UnitRow.id)
            .join(parent, parent.id == UnitLinkRow.parent_id)
            .where(UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user, UnitRow.level == "episode",
                   UnitRow.index_state != "none", UnitRow.deleted_at.is_(None), parent.level == "summary",
                   parent.deleted_at.is_(None), parent.index_state.in_(["indexed", "none"]))
        )
        with self.session() as s:
            return sorted(set(s.scalars(q)))

    def source_sets(self, s: Session, ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for chunk in _chunks(list(ids)):
            q = select(UnitSourceRow.unit_id, UnitSourceRow.event_id).where(UnitSourceRow.unit_id.in_(chunk))
            for uid, eid in s.execute(q.order_by(UnitSourceRow.unit_id, UnitSourceRow.position)):
                out[uid].append(eid)
        return dict(out)

    def live_ids(self, s: Session, ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for chunk in _chunks(list(ids)):
            out.update(s.scalars(select(UnitRow.id).where(UnitRow.id.in_(chunk), UnitRow.deleted_at.is_(None))))
        return out

    # -- retention -------------------------------------------------------------------------------------
    def record_access(self, counts: dict[str, int], now: datetime, growth: float) -> None:
        """A retrieval strengthens a memory: access_count += n, strength += growth * n, last_accessed."""
        if not counts:
            return
        t = UnitRow.__table__
        stmt = (update(t).where(t.c.id == bindparam("uid"))
                .values(access_count=t.c.access_count + bindparam("n"),
                        strength=t.c.strength + bindparam("g"), last_accessed=now))
        rows = [{"uid": uid, "n": n, "g": growth * n} for uid, n in sorted(counts.items())]
        with self.session() as s:
            s.connection().execute(stmt, rows)  # one executemany, not a statement per unit

    def soft_deleted_before(self, scope: Scope, before: datetime) -> list[str]:
        with self.session() as s:
            q = _scoped(select(UnitRow.id), scope).where(and_(UnitRow.deleted_at.is_not(None), UnitRow.deleted_at < before))
            return sorted(s.scalars(q))
