"""SQL record store (SQLAlchemy 2.x; SQLite or PostgreSQL): the source of truth.

Every read and write takes a ``Scope`` (tenant, user) and filters by it. Driver errors are translated
at this boundary into ``StoreError``/``StoreUnavailable``; SQLAlchemy exceptions never leave ``stores/``.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, bindparam, create_engine, delete, event, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from memsvc.exceptions import ConfigError, MissingDependencyError, StoreError, StoreUnavailable
from memsvc.stores.base import Scope
from memsvc.stores.sql_schema import EventRow, IndexMetaRow, UnitLinkRow, UnitRow, UnitSourceRow

__all__ = ["SQLRecordStore", "UnitHead", "UnitView", "migrate"]


def _migrations_dir() -> Path:
    import memsvc.migrations as m

    return Path(m.__file__).resolve().parent


def migrate(engine_or_url: Engine | str, revision: str = "head", down: bool = False) -> None:
    """Run Alembic migrations up to ``revision`` (or down to it with ``down=True``)."""
    from alembic import command
    from alembic.config import Config

    engine = _engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    # ConfigParser interpolation: a literal % in the URL (an escaped password) must be doubled.
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    try:
        with _mapped(), engine.connect() as conn:
            # SQLite: a batch migration rebuilds a table (copy, DROP, rename); with foreign keys on, the DROP
            # would cascade-delete every provenance row pointing at it. Off for the migration (outside a
            # transaction, where SQLite honours it), then back as it was.
            fk = engine.dialect.name == "sqlite" and bool(conn.exec_driver_sql("PRAGMA foreign_keys").scalar())
            if fk:
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    if down:
                        command.downgrade(cfg, revision)
                    else:
                        command.upgrade(cfg, revision)
            finally:
                if fk:
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()
    finally:
        if engine is not engine_or_url:  # ours: don't leave pooled connections behind
            engine.dispose()


def _safe_url(url: str) -> str:
    """``url`` with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def _engine(url: str, **kwargs: Any) -> Engine:
    try:
        return create_engine(url, **kwargs)
    except ArgumentError as exc:
        raise ConfigError(f"bad database URL {_safe_url(url)!r}: {exc}") from exc
    except ImportError as exc:
        raise MissingDependencyError(
            f"no driver for {_safe_url(url)!r} ({exc}); for PostgreSQL: pip install memsvc[postgres]"
        ) from exc


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        raise StoreError(f"constraint violated: {exc.orig}") from exc
    except OperationalError as exc:
        raise StoreUnavailable(f"database unavailable: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"database error: {exc}") from exc


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _in_scope(q: Select[Any], unit_id: Any, scope: Scope | None) -> Select[Any]:
    """``q`` restricted to rows whose ``unit_id`` column names a unit of ``scope`` (if given)."""
    if scope is None:
        return q
    return q.join(UnitRow, UnitRow.id == unit_id).where(UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user)


_HEAD_CHARS = 80


@dataclass(slots=True)
class UnitHead:
    """A unit's scoring fields (``SQLRecordStore.unit_heads``); ``head``: the text's first 80 chars."""

    id: str
    level: str
    status: str
    session_id: str | None
    stream_id: str | None
    start_ts: datetime
    end_ts: datetime
    valid_to: datetime | None
    head: str
    meta: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    """Position in the user's history of the event a turn unit is (None for other units)."""


@dataclass(slots=True)
class UnitView:
    """What a search hit shows of a live unit (``SQLRecordStore.unit_views``): read with a plain
    column select, no ORM object (the ranker hydrates dozens per query)."""

    id: str
    level: str
    status: str
    text: str
    user_id: str
    session_id: str | None
    stream_id: str | None
    start_ts: datetime
    end_ts: datetime
    valid_to: datetime | None
    meta: dict[str, Any]


def _ids() -> Any:
    return bindparam("ids", expanding=True)


_IN_SCOPE_UNITS = (UnitRow.tenant_id == bindparam("t"), UnitRow.user_id == bindparam("u"))
_IN_SCOPE_EVENTS = (EventRow.tenant_id == bindparam("t"), EventRow.user_id == bindparam("u"))
# the history position of a unit that is an event (a turn): a correlated primary-key lookup per row, which
# every planner serves from the index (a join let PostgreSQL pick a hash join over the user's events)
_SEQ_OF_UNIT = (select(EventRow.seq)
                .where(EventRow.id == UnitRow.id, EventRow.tenant_id == UnitRow.tenant_id,
                       EventRow.user_id == UnitRow.user_id)
                .correlate(UnitRow).scalar_subquery())
_HEAD_COLS = (UnitRow.id, UnitRow.level, UnitRow.status, UnitRow.session_id, UnitRow.stream_id, UnitRow.start_ts,
              UnitRow.end_ts, UnitRow.valid_to, func.substr(UnitRow.text, 1, _HEAD_CHARS), _SEQ_OF_UNIT)
# The ranker's hot reads, built once: values travel as bound parameters (an expanding one for the id
# lists), so a query is neither rebuilt nor re-coerced per call.
_Q_HEADS = select(*_HEAD_COLS).where(*_IN_SCOPE_UNITS, UnitRow.id.in_(_ids()), UnitRow.deleted_at.is_(None))
_Q_HEADS_META = select(*_HEAD_COLS, UnitRow.meta).where(
    *_IN_SCOPE_UNITS, UnitRow.id.in_(_ids()), UnitRow.deleted_at.is_(None))
_Q_VIEWS = select(
    UnitRow.id, UnitRow.level, UnitRow.status, UnitRow.text, UnitRow.user_id, UnitRow.session_id, UnitRow.stream_id,
    UnitRow.start_ts, UnitRow.end_ts, UnitRow.valid_to, UnitRow.meta,
).where(*_IN_SCOPE_UNITS, UnitRow.id.in_(_ids()), UnitRow.deleted_at.is_(None))
_Q_SOURCES = (select(UnitSourceRow.unit_id, UnitSourceRow.event_id).where(UnitSourceRow.unit_id.in_(_ids()))
              .order_by(UnitSourceRow.unit_id, UnitSourceRow.position))
_Q_SOURCES_SCOPED = (select(UnitSourceRow.unit_id, UnitSourceRow.event_id)
                     .join(UnitRow, UnitRow.id == UnitSourceRow.unit_id)
                     .where(UnitSourceRow.unit_id.in_(_ids()), *_IN_SCOPE_UNITS)
                     .order_by(UnitSourceRow.unit_id, UnitSourceRow.position))
_Q_POSITIONS = select(EventRow.id, EventRow.seq, EventRow.session_id, EventRow.stream_id).where(
    *_IN_SCOPE_EVENTS, EventRow.id.in_(_ids()))
_Q_EVENTS_AT = select(EventRow.seq, EventRow.id, EventRow.session_id, EventRow.stream_id).where(
    *_IN_SCOPE_EVENTS, EventRow.seq.in_(_ids()))
_Q_EPISODES_OF = (select(UnitSourceRow.event_id, UnitSourceRow.unit_id)
                  .join(UnitRow, UnitRow.id == UnitSourceRow.unit_id)
                  .where(UnitSourceRow.event_id.in_(_ids()), *_IN_SCOPE_UNITS, UnitRow.level == "episode",
                         UnitRow.deleted_at.is_(None))
                  .order_by(UnitSourceRow.event_id, UnitSourceRow.unit_id))


def _chunks(seq: Sequence[str], n: int = 500) -> Iterator[Sequence[str]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class SQLRecordStore:
    """Events, units and provenance in SQL."""

    def __init__(self, url: str, auto_migrate: bool = True, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        try:
            self.engine = _engine(url, **kwargs)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot open database {_safe_url(url)!r}: {exc}") from exc
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if auto_migrate:
            migrate(self.engine)
        self._sqlite = url.startswith("sqlite")
        self._grown = 0
        self._analyzed_rows = 0
        if self._sqlite and auto_migrate:
            with contextlib.suppress(OperationalError):  # read-only or busy: plans stay as they are
                self.analyze()

    def analyze(self) -> None:
        """Refresh the planner statistics. Without them both engines answer ``id IN (...)`` lookups
        scoped by tenant and user by scanning the user's rows through the scope index instead of probing
        primary keys: a search's cost then grows with the user's history (PostgreSQL, before its
        autovacuum first analyzes a new or fast-growing table: 62 ms instead of ~1 ms for 200 ids among
        3k rows). SQLite samples ``analysis_limit`` rows per index and PostgreSQL a fixed sample per
        table, so this costs milliseconds to a fraction of a second at any size."""
        with self.engine.begin() as c:
            if self._sqlite:
                c.exec_driver_sql("PRAGMA analysis_limit=1000")
                c.exec_driver_sql("ANALYZE")
            else:
                c.exec_driver_sql("ANALYZE events, units, unit_sources, unit_links")
            self._analyzed_rows = int(c.exec_driver_sql("SELECT count(*) FROM units").scalar() or 0)
        self._grown = 0

    def _note_written(self, n: int) -> None:
        """Re-analyze whenever the store has grown by as many rows as it held at the last analysis."""
        self._grown += n
        if self._grown >= max(1_000, self._analyzed_rows):
            # a busy database, or a PostgreSQL role that may not analyze: the write itself is done; the
            # next one tries again
            with contextlib.suppress(SQLAlchemyError):
                self.analyze()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        with _mapped(), self._sessions() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()

    # -- writes --------------------------------------------------------------------------------------
    def write(
        self,
        events: Iterable[EventRow] = (),
        units: Iterable[UnitRow] = (),
        sources: Iterable[UnitSourceRow] = (),
        links: Iterable[UnitLinkRow] = (),
        replace_sources_of: Sequence[str] = (),
    ) -> None:
        """Insert/merge rows in one transaction (units by primary key; sources of the listed units
        are replaced)."""
        events, units = list(events), list(units)
        with self.session() as s:
            s.add_all(events)
            s.flush()
            for u in units:
                s.merge(u)
            s.flush()
            for chunk in _chunks(list(replace_sources_of)):
                s.execute(delete(UnitSourceRow).where(UnitSourceRow.unit_id.in_(chunk)))
            s.add_all(list(sources))
            s.add_all(list(links))
        self._note_written(len(events) + len(units))

    def set_index_state(self, ids: Sequence[str], state: str) -> None:
        with self.session() as s:
            for chunk in _chunks(list(ids)):
                s.execute(update(UnitRow).where(UnitRow.id.in_(chunk)).values(index_state=state))

    # -- reads ---------------------------------------------------------------------------------------
    def client_ids(self, scope: Scope, client_ids: Sequence[str]) -> dict[str, str]:
        """Existing ``client_id -> event id`` for this scope."""
        out: dict[str, str] = {}
        with self.session() as s:
            for chunk in _chunks(list(client_ids)):
                q = select(EventRow.client_id, EventRow.id).where(
                    EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user, EventRow.client_id.in_(chunk)
                )
                out.update({c: i for c, i in s.execute(q) if c is not None})
        return out

    def max_seq(self, scope: Scope) -> int:
        with self.session() as s:
            v = s.scalar(
                select(func.max(EventRow.seq)).where(EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user)
            )
        return int(v) if v is not None else 0

    def units(self, scope: Scope, ids: Sequence[str], live_only: bool = True) -> dict[str, UnitRow]:
        out: dict[str, UnitRow] = {}
        with self.session() as s:
            for chunk in _chunks(list(ids)):
                q = select(UnitRow).where(
                    UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user, UnitRow.id.in_(chunk)
                )
                if live_only:
                    q = q.where(UnitRow.deleted_at.is_(None))
                out.update({u.id: u for u in s.scalars(q)})
        return out

    def unit_views(self, scope: Scope, ids: Sequence[str]) -> dict[str, UnitView]:
        """Live units of ``scope`` among ``ids``, as ``UnitView`` (the fields of a search hit)."""
        out: dict[str, UnitView] = {}
        with self.engine.connect() as c:
            for chunk in _chunks(list(ids)):
                for r in c.execute(_Q_VIEWS, {"t": scope.tenant, "u": scope.user, "ids": list(chunk)}):
                    out[r[0]] = UnitView(*r[:10], meta=r[10] or {})
        return out

    def unit_heads(self, scope: Scope, ids: Sequence[str], with_meta: bool = False) -> dict[str, UnitHead]:
        """What the ranker scores on, for live units: no full text (its first 80 characters name the
        speaker), no ORM objects, ``meta`` only when asked (JSON decoding is the slow part), and the
        history position of turn units (``seq``, read in the same query)."""
        q = _Q_HEADS_META if with_meta else _Q_HEADS
        out: dict[str, UnitHead] = {}
        with self.engine.connect() as c:
            for chunk in _chunks(list(ids)):
                for r in c.execute(q, {"t": scope.tenant, "u": scope.user, "ids": list(chunk)}):
                    out[r[0]] = UnitHead(*r[:9], seq=r[9], meta=(r[10] or {}) if with_meta else {})
        return out

    def sources(self, ids: Sequence[str], scope: Scope | None = None) -> dict[str, list[str]]:
        """``unit id -> event ids`` in position order (only units of ``scope`` when given)."""
        out: dict[str, list[str]] = defaultdict(list)
        q = _Q_SOURCES if scope is None else _Q_SOURCES_SCOPED
        args = {} if scope is None else {"t": scope.tenant, "u": scope.user}
        with self.engine.connect() as c:
            for chunk in _chunks(list(ids)):
                for uid, eid in c.execute(q, {**args, "ids": list(chunk)}):
                    out[uid].append(eid)
        return dict(out)

    def roles(self, scope: Scope, event_ids: Sequence[str]) -> dict[str, str | None]:
        """``event id -> role`` ("user", "assistant", ...) of chat events (a turn unit's id is its event's)."""
        out: dict[str, str | None] = {}
        with self.session() as s:
            for chunk in _chunks(list(event_ids)):
                q = select(EventRow.id, EventRow.role).where(
                    EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user, EventRow.id.in_(chunk)
                )
                out.update({i: r for i, r in s.execute(q)})
        return out

    def positions(self, scope: Scope, event_ids: Sequence[str]) -> dict[str, tuple[int, str | None, str | None]]:
        """``event id -> (seq, session_id, stream_id)``: where each event sits in the user's history."""
        out: dict[str, tuple[int, str | None, str | None]] = {}
        with self.engine.connect() as c:
            for chunk in _chunks(list(event_ids)):
                rows = c.execute(_Q_POSITIONS, {"t": scope.tenant, "u": scope.user, "ids": list(chunk)})
                out.update({i: (seq, ses, st) for i, seq, ses, st in rows})
        return out

    def preceding(
        self, scope: Scope, event_ids: Sequence[str], n: int
    ) -> tuple[dict[str, tuple[int, str | None, str | None]], dict[int, tuple[str, str | None, str | None]]]:
        """``positions(event_ids)``, and ``events_at`` the ``n`` positions before each (two index
        lookups: a range self-join is planned badly by PostgreSQL)."""
        pos = self.positions(scope, event_ids)
        want = {p[0] - d for p in pos.values() for d in range(1, n + 1)}
        return pos, self.events_at(scope, [s for s in want if s > 0])

    def events_at(self, scope: Scope, seqs: Sequence[int]) -> dict[int, tuple[str, str | None, str | None]]:
        """``seq -> (event id, session_id, stream_id)`` for the user's events at those positions."""
        out: dict[int, tuple[str, str | None, str | None]] = {}
        with self.engine.connect() as c:
            for chunk in _chunks(sorted(set(seqs))):  # type: ignore[arg-type]
                rows = c.execute(_Q_EVENTS_AT, {"t": scope.tenant, "u": scope.user, "ids": list(chunk)})
                out.update({seq: (i, ses, st) for seq, i, ses, st in rows})
        return out

    def episodes_of(self, scope: Scope, event_ids: Sequence[str]) -> dict[str, str]:
        """``event id -> id of a live episode unit built from it`` (the first by id)."""
        out: dict[str, str] = {}
        with self.engine.connect() as c:
            for chunk in _chunks(list(event_ids)):
                for eid, uid in c.execute(_Q_EPISODES_OF, {"t": scope.tenant, "u": scope.user, "ids": list(chunk)}):
                    out.setdefault(eid, uid)
        return out

    def session_tail(self, scope: Scope, session: str | None, n: int) -> list[EventRow]:
        """The last ``n`` events of a session (of the user's events without a session when None),
        oldest first."""
        with self.session() as s:
            q = select(EventRow).where(EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user,
                                       EventRow.kind == "turn")
            q = q.where(EventRow.session_id.is_(None) if session is None else EventRow.session_id == session)
            rows = list(s.scalars(q.order_by(EventRow.seq.desc()).limit(n)))
        return rows[::-1]

    def stream_starts(self, scope: Scope, stream: str | None = None) -> dict[str, datetime]:
        """``stream id -> time of its first event`` (video offsets count from there)."""
        with self.session() as s:
            q = select(EventRow.stream_id, func.min(EventRow.ts)).where(
                EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user, EventRow.stream_id.is_not(None)
            )
            if stream is not None:
                q = q.where(EventRow.stream_id == stream)
            return {st: ts for st, ts in s.execute(q.group_by(EventRow.stream_id)) if st is not None}

    def open_episodes(self, scope: Scope) -> list[UnitRow]:
        with self.session() as s:
            q = select(UnitRow).where(
                UnitRow.tenant_id == scope.tenant,
                UnitRow.user_id == scope.user,
                UnitRow.level == "episode",
                UnitRow.status == "open",
                UnitRow.deleted_at.is_(None),
            )
            return list(s.scalars(q))

    def events(self, scope: Scope, ids: Sequence[str]) -> dict[str, EventRow]:
        out: dict[str, EventRow] = {}
        with self.session() as s:
            for chunk in _chunks(list(ids)):
                q = select(EventRow).where(
                    EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user, EventRow.id.in_(chunk)
                )
                out.update({e.id: e for e in s.scalars(q)})
        return out

    def history(
        self,
        scope: Scope,
        session_id: str | None = None,
        stream_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[EventRow]:
        with self.session() as s:
            q = select(EventRow).where(EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user)
            if session_id is not None:
                q = q.where(EventRow.session_id == session_id)
            if stream_id is not None:
                q = q.where(EventRow.stream_id == stream_id)
            if since is not None:
                q = q.where(EventRow.ts >= since)
            if until is not None:
                q = q.where(EventRow.ts <= until)
            q = q.order_by(EventRow.seq).offset(offset).limit(limit)
            return list(s.scalars(q))

    def units_of_events(self, event_ids: Sequence[str], scope: Scope | None = None) -> set[str]:
        """Ids of every unit (of ``scope`` when given) that lists one of these events among its sources."""
        out: set[str] = set()
        with self.session() as s:
            for chunk in _chunks(list(event_ids)):
                q = select(UnitSourceRow.unit_id).where(UnitSourceRow.event_id.in_(chunk))
                out.update(s.scalars(_in_scope(q, UnitSourceRow.unit_id, scope)))
        return out

    def descendants(self, unit_ids: Iterable[str], scope: Scope | None = None) -> set[str]:
        """Units derived (transitively, through unit_links) from these units, these included (only units
        of ``scope`` are followed when given)."""
        seen = set(unit_ids)
        frontier = list(seen)
        with self.session() as s:
            while frontier:
                nxt: list[str] = []
                for chunk in _chunks(frontier):
                    q = select(UnitLinkRow.parent_id).where(UnitLinkRow.child_id.in_(chunk))
                    nxt += list(s.scalars(_in_scope(q, UnitLinkRow.parent_id, scope)))
                frontier = [p for p in nxt if p not in seen]
                seen.update(frontier)
        return seen

    def unit_ids_by_state(self, states: Sequence[str], limit: int = 10_000) -> list[UnitRow]:
        with self.session() as s:
            q = (
                select(UnitRow)
                .where(UnitRow.index_state.in_(list(states)), UnitRow.deleted_at.is_(None))
                .limit(limit)
            )
            return list(s.scalars(q))

    def units_page(self, after: str = "", limit: int = 1000) -> list[UnitRow]:
        """Live indexed units of every scope with id > ``after``, by id (to rebuild an index)."""
        with self.session() as s:
            q = (select(UnitRow).where(UnitRow.deleted_at.is_(None), UnitRow.index_state != "none",
                                       UnitRow.id > after).order_by(UnitRow.id).limit(limit))
            return list(s.scalars(q))

    def live_unit_ids(self, scope: Scope | None = None) -> set[str]:
        with self.session() as s:
            q = select(UnitRow.id).where(UnitRow.deleted_at.is_(None), UnitRow.index_state != "none")
            if scope is not None:
                q = q.where(UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user)
            return set(s.scalars(q))

    def unit_ids(self, scope: Scope) -> set[str]:
        """Every unit id of a user, live or not."""
        with self.session() as s:
            return set(s.scalars(select(UnitRow.id).where(UnitRow.tenant_id == scope.tenant,
                                                          UnitRow.user_id == scope.user)))

    def count(self, scope: Scope | None = None, tenant: str | None = None) -> dict[str, int]:
        """Number of events and of live units per level (of one scope, one tenant, or all)."""
        with self.session() as s:
            qe = select(func.count()).select_from(EventRow)
            qu = select(UnitRow.level, func.count()).where(UnitRow.deleted_at.is_(None)).group_by(UnitRow.level)
            if scope is not None:
                qe = qe.where(EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user)
                qu = qu.where(UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user)
            elif tenant is not None:
                qe = qe.where(EventRow.tenant_id == tenant)
                qu = qu.where(UnitRow.tenant_id == tenant)
            out = {"events": int(s.scalar(qe) or 0)}
            out.update({lvl: int(n) for lvl, n in s.execute(qu)})
        return out

    def tenant_users(self, tenant: str) -> list[str]:
        """Every user of ``tenant`` with an event or a unit."""
        with self.session() as s:
            users = set(s.scalars(select(EventRow.user_id).where(EventRow.tenant_id == tenant).distinct()))
            users |= set(s.scalars(select(UnitRow.user_id).where(UnitRow.tenant_id == tenant).distinct()))
        return sorted(users)

    def owner(self, tenant: str, record_id: str) -> str | None:
        """The user owning a unit or event id inside ``tenant`` (None when unknown)."""
        with self.session() as s:
            uid = s.scalar(select(UnitRow.user_id).where(UnitRow.tenant_id == tenant, UnitRow.id == record_id))
            if uid is None:
                uid = s.scalar(select(EventRow.user_id).where(EventRow.tenant_id == tenant, EventRow.id == record_id))
        return uid

    def close_episodes(self, ids: Sequence[str]) -> None:
        with self.session() as s:
            for chunk in _chunks(list(ids)):
                s.execute(update(UnitRow).where(UnitRow.id.in_(chunk)).values(status="closed"))

    def idle_open_episodes(self, tenant: str, before: datetime) -> list[UnitRow]:
        """Open episodes whose last turn is older than ``before``."""
        with self.session() as s:
            q = select(UnitRow).where(
                UnitRow.tenant_id == tenant, UnitRow.level == "episode", UnitRow.status == "open",
                UnitRow.end_ts < before,
            )
            return list(s.scalars(q))

    # -- deletes -------------------------------------------------------------------------------------
    def delete_units(self, ids: Sequence[str], scope: Scope | None = None) -> None:
        """Delete units by id (only those of ``scope`` when given); their provenance rows cascade."""
        with self.session() as s:
            for chunk in _chunks(list(ids)):
                q = delete(UnitRow).where(UnitRow.id.in_(chunk))
                if scope is not None:
                    q = q.where(UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user)
                s.execute(q)

    def delete_events(self, scope: Scope, ids: Sequence[str]) -> None:
        with self.session() as s:
            for chunk in _chunks(list(ids)):
                s.execute(
                    delete(EventRow).where(
                        EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user, EventRow.id.in_(chunk)
                    )
                )

    def delete_scope(self, scope: Scope) -> int:
        """Delete every event and unit of a user (provenance rows cascade). Returns units deleted."""
        with self.session() as s:
            ids = list(
                s.scalars(select(UnitRow.id).where(UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user))
            )
            for chunk in _chunks(ids):
                s.execute(delete(UnitSourceRow).where(UnitSourceRow.unit_id.in_(chunk)))
                s.execute(delete(UnitLinkRow).where(UnitLinkRow.parent_id.in_(chunk)))
                s.execute(delete(UnitLinkRow).where(UnitLinkRow.child_id.in_(chunk)))
            s.execute(delete(UnitRow).where(UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user))
            s.execute(delete(EventRow).where(EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user))
        return len(ids)

    # -- index metadata ------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self.session() as s:
            return {r.key: r.value for r in s.scalars(select(IndexMetaRow))}

    def set_meta(self, values: dict[str, str]) -> None:
        with self.session() as s:
            for k, v in values.items():
                s.merge(IndexMetaRow(key=k, value=v))


