"""SQLRecordStore and its Alembic migrations, on SQLite (a temporary file) and on the local PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select

from memsvc.exceptions import ConfigError, StoreError, StoreUnavailable
from memsvc.stores import Scope
from memsvc.stores.sql import SQLRecordStore, migrate
from memsvc.stores.sql_schema import Base, EventRow, IndexMetaRow, UnitLinkRow, UnitRow, UnitSourceRow

TABLES = {
    "events", "units", "unit_sources", "unit_links", "index_meta", "api_keys", "idempotency_keys", "video_streams",
    "unit_facts", "consolidation_state",
}
A = Scope("tenant-a", "alice")
A_OTHER_TENANT = Scope("tenant-b", "alice")
A_OTHER_USER = Scope("tenant-a", "bob")
T0 = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'memsvc.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(db_url: str) -> Iterator[SQLRecordStore]:
    s = SQLRecordStore(db_url)
    yield s
    s.close()


def new_id() -> str:
    return str(uuid.uuid4())


def event(scope: Scope = A, seq: int = 1, *, ts: datetime = T0, **kw: Any) -> EventRow:
    fields: dict[str, Any] = {
        "id": new_id(),
        "tenant_id": scope.tenant,
        "user_id": scope.user,
        "kind": "turn",
        "session_id": "s1",
        "seq": seq,
        "role": "user",
        "name": "Ann",
        "text": f"turn {seq}",
        "ts": ts,
        "meta": {},
    }
    fields.update(kw)
    return EventRow(**fields)


def unit(scope: Scope = A, level: str = "turn", *, uid: str | None = None, **kw: Any) -> UnitRow:
    fields: dict[str, Any] = {
        "id": uid or new_id(),
        "tenant_id": scope.tenant,
        "user_id": scope.user,
        "level": level,
        "session_id": "s1",
        "text": f"a {level}",
        "start_ts": T0,
        "end_ts": T0 + timedelta(minutes=5),
        "status": "closed",
        "index_state": "pending",
        "meta": {},
    }
    fields.update(kw)
    return UnitRow(**fields)


def table_rows(store: SQLRecordStore, row: type[Base]) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(row)) or 0)


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return set(inspect(c).get_table_names())
    finally:
        engine.dispose()


# -- migrations --------------------------------------------------------------------------------------
def test_migrations_up_down_up(db_url: str) -> None:
    migrate(db_url)
    assert tables(db_url) == TABLES | {"alembic_version"}
    migrate(db_url, "base", down=True)
    assert tables(db_url) == {"alembic_version"}
    migrate(db_url)
    assert tables(db_url) == TABLES | {"alembic_version"}
    migrate(db_url)  # at head already: a no-op
    s = SQLRecordStore(db_url, auto_migrate=False)
    try:
        s.write(events=[event()])
        assert s.count(A)["events"] == 1
    finally:
        s.close()


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    migrate(db_url)
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            ctx = MigrationContext.configure(c, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        engine.dispose()


def test_migrate_takes_an_engine_and_leaves_it_open(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        migrate(engine)
        with engine.connect() as c:
            assert set(inspect(c).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_a_percent_sign_in_the_url_is_not_taken_for_interpolation(tmp_path: Path) -> None:
    folder = tmp_path / "100%"
    folder.mkdir()
    url = f"sqlite:///{folder / 'memsvc.db'}"
    migrate(url)
    assert tables(url) >= TABLES


# -- round trips -------------------------------------------------------------------------------------
def test_round_trip_of_events_units_sources_and_links(store: SQLRecordStore) -> None:
    e1 = event(
        seq=1, text="I adopted a puppy named Rex 🐶", client_id="c-1", meta={"lang": "en", "n": [1, 2]}
    )
    e2 = event(
        seq=2, text=None, kind="frame", session_id=None, stream_id="cam1", embedding=b"\x00\x01\xff" * 10
    )
    e2.image_ref = "s3://bucket/frame.jpg"
    episode = unit(
        level="episode", text="Ann adopted Rex", embedder="minilm", embedder_version="1", token_count=5
    )
    summary = unit(level="summary", text="Ann has a dog", compressor="none", compressor_version="0")
    store.write(
        events=[e1, e2],
        units=[episode, summary],
        sources=[
            UnitSourceRow(unit_id=episode.id, event_id=e2.id, position=1),
            UnitSourceRow(unit_id=episode.id, event_id=e1.id, position=0),
        ],
        links=[UnitLinkRow(parent_id=summary.id, child_id=episode.id)],
    )
    evs = store.events(A, [e1.id, e2.id])
    assert evs[e1.id].text == e1.text and evs[e1.id].meta == {"lang": "en", "n": [1, 2]}
    assert evs[e1.id].client_id == "c-1"
    assert evs[e2.id].embedding == b"\x00\x01\xff" * 10 and evs[e2.id].image_ref == "s3://bucket/frame.jpg"
    assert evs[e2.id].stream_id == "cam1" and evs[e2.id].session_id is None
    units = store.units(A, [episode.id, summary.id])
    assert units[episode.id].text == "Ann adopted Rex"
    assert (units[episode.id].embedder, units[episode.id].embedder_version) == ("minilm", "1")
    assert units[episode.id].token_count == 5 and units[episode.id].index_state == "pending"
    assert units[summary.id].compressor == "none"
    assert store.sources([episode.id, summary.id]) == {episode.id: [e1.id, e2.id]}
    assert store.descendants([episode.id]) == {episode.id, summary.id}
    assert store.units_of_events([e2.id]) == {episode.id}
    assert store.count(A) == {"events": 2, "episode": 1, "summary": 1}


def test_write_merges_units_and_replaces_sources(store: SQLRecordStore) -> None:
    e1, e2 = event(seq=1), event(seq=2)
    ep = unit(level="episode", status="open")
    store.write(
        events=[e1, e2], units=[ep], sources=[UnitSourceRow(unit_id=ep.id, event_id=e1.id, position=0)]
    )
    grown = unit(level="episode", uid=ep.id, text="grown", status="open")
    store.write(
        units=[grown],
        sources=[
            UnitSourceRow(unit_id=ep.id, event_id=e1.id, position=0),
            UnitSourceRow(unit_id=ep.id, event_id=e2.id, position=1),
        ],
        replace_sources_of=[ep.id],
    )
    assert store.units(A, [ep.id])[ep.id].text == "grown"
    assert store.sources([ep.id]) == {ep.id: [e1.id, e2.id]}
    assert [u.id for u in store.open_episodes(A)] == [ep.id]
    store.close_episodes([ep.id])
    assert store.open_episodes(A) == []


def test_a_failed_write_leaves_nothing(store: SQLRecordStore) -> None:
    ok = event(seq=1)
    with pytest.raises(StoreError):
        store.write(events=[ok], sources=[UnitSourceRow(unit_id=new_id(), event_id=ok.id, position=0)])
    assert store.events(A, [ok.id]) == {}


def test_index_state_and_meta(store: SQLRecordStore) -> None:
    u1, u2 = unit(), unit()
    store.write(units=[u1, u2])
    store.set_index_state([u1.id], "indexed")
    assert {u.id for u in store.unit_ids_by_state(["pending"])} == {u2.id}
    assert store.live_unit_ids(A) == {u1.id, u2.id}
    store.set_meta({"embedder": "minilm", "dim": "384"})
    store.set_meta({"dim": "768"})
    assert store.meta() == {"embedder": "minilm", "dim": "768"}
    assert table_rows(store, IndexMetaRow) == 2


# -- time ---------------------------------------------------------------------------------------------
def test_aware_times_come_back_as_aware_utc(store: SQLRecordStore) -> None:
    lisbon_summer = timezone(timedelta(hours=1))
    e = event(ts=datetime(2024, 7, 1, 9, 30, 15, 123456, tzinfo=lisbon_summer))
    u = unit(start_ts=datetime(2024, 7, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5))), end_ts=T0)
    store.write(events=[e], units=[u])
    got = store.events(A, [e.id])[e.id]
    assert got.ts == datetime(2024, 7, 1, 8, 30, 15, 123456, tzinfo=UTC)
    assert got.ts.tzinfo is UTC
    assert got.created_at.tzinfo is UTC
    assert abs(got.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    back = store.units(A, [u.id])[u.id]
    assert back.start_ts == datetime(2024, 7, 1, 14, 30, tzinfo=UTC) and back.start_ts.tzinfo is UTC
    assert back.end_ts == T0 and back.last_accessed is None


def test_history_pages_in_arrival_order_and_filters_by_aware_bounds(store: SQLRecordStore) -> None:
    evs = [event(seq=i, ts=T0 + timedelta(hours=i), session_id="s2" if i == 3 else "s1") for i in range(1, 6)]
    store.write(events=list(reversed(evs)))
    assert [e.seq for e in store.history(A)] == [1, 2, 3, 4, 5]
    assert [e.seq for e in store.history(A, limit=2, offset=1)] == [2, 3]
    assert [e.seq for e in store.history(A, session_id="s2")] == [3]
    plus2 = timezone(timedelta(hours=2))
    since, until = (T0 + timedelta(hours=2)).astimezone(plus2), (T0 + timedelta(hours=4)).astimezone(plus2)
    assert [e.seq for e in store.history(A, since=since, until=until)] == [2, 3, 4]
    assert store.max_seq(A) == 5


def test_naive_datetimes_are_refused(store: SQLRecordStore) -> None:
    with pytest.raises(StoreError, match="naive"):
        store.write(events=[event(ts=datetime(2024, 1, 1, 12, 0))])
    assert store.count(A)["events"] == 0
    with pytest.raises(StoreError, match="naive"):
        store.history(A, since=datetime(2024, 1, 1))


def test_idle_open_episodes(store: SQLRecordStore) -> None:
    old = unit(level="episode", status="open", end_ts=T0)
    fresh = unit(level="episode", status="open", end_ts=T0 + timedelta(hours=2))
    theirs = unit(A_OTHER_TENANT, level="episode", status="open", end_ts=T0)
    store.write(units=[old, fresh, theirs])
    assert [u.id for u in store.idle_open_episodes(A.tenant, T0 + timedelta(hours=1))] == [old.id]


# -- idempotency -------------------------------------------------------------------------------------
def test_client_id_is_unique_per_tenant_and_user(store: SQLRecordStore) -> None:
    first = event(client_id="msg-1")
    store.write(events=[first, event(client_id=None), event(client_id=None)])
    dup, bystander = event(client_id="msg-1", seq=2), event(client_id="msg-2", seq=3)
    with pytest.raises(StoreError):
        store.write(events=[bystander, dup])
    assert store.events(A, [bystander.id, dup.id]) == {}
    store.write(events=[event(A_OTHER_USER, client_id="msg-1"), event(A_OTHER_TENANT, client_id="msg-1")])
    assert store.client_ids(A, ["msg-1", "msg-2", "nope"]) == {"msg-1": first.id}
    assert store.count(A)["events"] == 3


# -- isolation -----------------------------------------------------------------------------------------
def _populate(store: SQLRecordStore, scope: Scope, seqs: int = 3) -> dict[str, Any]:
    evs = [event(scope, seq=i, client_id=f"c{i}", ts=T0 + timedelta(minutes=i)) for i in range(1, seqs + 1)]
    ep = unit(scope, level="episode", status="open", end_ts=T0)
    turns = [unit(scope, "turn", uid=e.id) for e in evs]
    summary = unit(scope, level="summary")
    store.write(
        events=evs,
        units=[ep, *turns, summary],
        sources=[UnitSourceRow(unit_id=ep.id, event_id=e.id, position=i) for i, e in enumerate(evs)]
        + [UnitSourceRow(unit_id=t.id, event_id=t.id, position=0) for t in turns],
        links=[UnitLinkRow(parent_id=summary.id, child_id=ep.id)],
    )
    return {
        "events": [e.id for e in evs],
        "units": [ep.id, summary.id, *[t.id for t in turns]],
        "episode": ep.id,
        "summary": summary.id,
    }


def test_every_read_stays_in_its_scope(store: SQLRecordStore) -> None:
    scopes = [A, A_OTHER_TENANT, A_OTHER_USER]
    data = {s: _populate(store, s, seqs=2 + i) for i, s in enumerate(scopes)}
    all_events = [e for d in data.values() for e in d["events"]]
    all_units = [u for d in data.values() for u in d["units"]]
    for s in scopes:
        mine = data[s]
        assert set(store.events(s, all_events)) == set(mine["events"])
        assert set(store.units(s, all_units)) == set(mine["units"])
        assert set(store.units(s, all_units, live_only=False)) == set(mine["units"])
        assert [e.id for e in store.history(s)] == mine["events"]
        assert store.max_seq(s) == len(mine["events"])
        assert set(store.client_ids(s, ["c1", "c2", "c3", "c4"]).values()) <= set(mine["events"])
        assert [u.id for u in store.open_episodes(s)] == [mine["episode"]]
        assert store.live_unit_ids(s) == set(mine["units"])
        assert store.count(s) == {
            "events": len(mine["events"]),
            "episode": 1,
            "summary": 1,
            "turn": len(mine["events"]),
        }
        assert set(store.sources(all_units, scope=s)) == set(mine["units"]) - {mine["summary"]}
        assert store.units_of_events(all_events, scope=s) == set(mine["units"]) - {mine["summary"]}
        others = {data[o]["episode"] for o in scopes if o != s}
        assert store.descendants([mine["episode"], *others], scope=s) == {
            mine["episode"],
            mine["summary"],
            *others,
        }
        for o in scopes:
            if o.tenant == s.tenant:
                assert store.owner(s.tenant, data[o]["episode"]) == o.user
                assert store.owner(s.tenant, data[o]["events"][0]) == o.user
            else:
                assert store.owner(s.tenant, data[o]["episode"]) is None
    assert store.live_unit_ids() == set(all_units)
    assert store.count()["events"] == len(all_events)


def test_scoped_deletes_touch_only_their_scope(store: SQLRecordStore) -> None:
    mine, theirs = _populate(store, A), _populate(store, A_OTHER_USER)
    store.delete_events(A, theirs["events"])
    store.delete_units(theirs["units"], scope=A)
    assert set(store.events(A_OTHER_USER, theirs["events"])) == set(theirs["events"])
    assert set(store.units(A_OTHER_USER, theirs["units"])) == set(theirs["units"])
    store.delete_events(A, mine["events"][:1])
    assert set(store.events(A, mine["events"])) == set(mine["events"][1:])


# -- deletes and cascades ----------------------------------------------------------------------------
def test_deleting_a_unit_cascades_its_provenance(store: SQLRecordStore) -> None:
    d = _populate(store, A)
    assert table_rows(store, UnitLinkRow) == 1
    store.delete_units([d["episode"]])
    assert store.sources([d["episode"]]) == {}
    assert table_rows(store, UnitLinkRow) == 0  # the episode was the link's child
    assert table_rows(store, UnitSourceRow) == 3  # the turn units' own sources remain
    assert set(store.events(A, d["events"])) == set(d["events"])
    assert d["summary"] in store.units(A, [d["summary"]])


def test_deleting_a_parent_unit_cascades_its_links(store: SQLRecordStore) -> None:
    d = _populate(store, A)
    store.delete_units([d["summary"]])
    assert table_rows(store, UnitLinkRow) == 0
    assert store.sources([d["episode"]]) == {d["episode"]: d["events"]}


def test_deleting_an_event_cascades_its_sources(store: SQLRecordStore) -> None:
    d = _populate(store, A)
    store.delete_events(A, d["events"][:1])
    assert store.sources([d["episode"]]) == {d["episode"]: d["events"][1:]}
    assert store.units_of_events(d["events"][:1]) == set()


def test_delete_scope_removes_one_user_and_their_provenance(store: SQLRecordStore) -> None:
    kept = [_populate(store, A_OTHER_TENANT), _populate(store, A_OTHER_USER)]
    _populate(store, A)
    assert store.delete_scope(A) == 5
    assert store.count(A) == {"events": 0}
    assert table_rows(store, UnitSourceRow) == 2 * 6
    assert table_rows(store, UnitLinkRow) == 2
    for s, d in zip((A_OTHER_TENANT, A_OTHER_USER), kept, strict=True):
        assert set(store.units(s, d["units"])) == set(d["units"])
        assert store.sources([d["episode"]]) == {d["episode"]: d["events"]}
    assert store.delete_scope(A) == 0


# -- failures ------------------------------------------------------------------------------------------
def test_an_unreachable_server_is_unavailable_and_the_password_stays_secret() -> None:
    with pytest.raises(StoreUnavailable) as err:
        SQLRecordStore("postgresql+psycopg://memsvc:s3cr3t-pw@127.0.0.1:1/memsvc")
    assert "s3cr3t-pw" not in str(err.value)
    assert err.value.is_retryable


def test_an_unusable_sqlite_path_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreUnavailable):
        SQLRecordStore(f"sqlite:///{tmp_path / 'file' / 'memsvc.db'}")


@pytest.mark.parametrize("url", ["not a url", "nosuchdialect://x/y"])
def test_a_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        SQLRecordStore(url)


def test_sqlite_keeps_planner_statistics_so_scoped_id_lookups_probe_the_primary_key(tmp_path: Path) -> None:
    """Without statistics SQLite serves ``tenant/user + id IN (...)`` by scanning every row of the user
    through the scope index (a search then slows down as the history grows); the store analyzes on
    open and as it grows, so the lookup probes the primary key."""
    s = SQLRecordStore(f"sqlite:///{tmp_path / 'memsvc.db'}")
    try:
        for batch in range(3):
            units = [unit(A, text=f"turn {batch}-{i}") for i in range(600)]
            s.write(units=units)
        with s.engine.connect() as c:
            assert c.exec_driver_sql("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'units'").scalar()
            ids = [u.id for u in units[:50]]
            q = (
                "EXPLAIN QUERY PLAN SELECT id FROM units WHERE tenant_id = ? AND user_id = ? AND id IN ("
                + ",".join("?" * len(ids)) + ") AND deleted_at IS NULL"
            )
            plan = " ".join(str(r[-1]) for r in c.exec_driver_sql(q, (A.tenant, A.user, *ids)))
        assert "(id=?)" in plan, plan
        heads = s.unit_heads(A, ids)
        assert set(heads) == set(ids)
        assert heads[ids[0]].head == "turn 2-0" and heads[ids[0]].meta == {}
        assert s.unit_heads(Scope(A.tenant, "someone-else"), ids) == {}
    finally:
        s.close()


def test_ranker_reads_positions_and_heads_in_scope(store: SQLRecordStore) -> None:
    evs = [event(seq=i, session_id="s1" if i <= 3 else "s2") for i in range(1, 7)]
    bob = [event(A_OTHER_USER, seq=i) for i in range(1, 7)]  # same seqs, another user
    store.write(events=evs + bob, units=[unit(uid=e.id) for e in evs] + [unit(A_OTHER_USER, uid=e.id) for e in bob])
    ep = unit(level="episode")
    store.write(units=[ep])
    pos, before = store.preceding(A, [evs[4].id, evs[0].id, bob[5].id], 2)
    assert pos == {evs[4].id: (5, "s2", None), evs[0].id: (1, "s1", None)}  # bob's event is not alice's
    assert before == {3: (evs[2].id, "s1", None), 4: (evs[3].id, "s2", None)}  # seq 1 has nothing before it
    assert pos == {k: v for k, v in store.positions(A, [evs[4].id, evs[0].id]).items()}
    heads = store.unit_heads(A, [evs[2].id, ep.id, bob[2].id], with_meta=True)
    assert set(heads) == {evs[2].id, ep.id}
    assert heads[evs[2].id].seq == 3 and heads[ep.id].seq is None
    views = store.unit_views(A, [evs[2].id, bob[2].id])
    assert list(views) == [evs[2].id] and views[evs[2].id].text == "a turn"


def test_planner_statistics_follow_the_store_size(store: SQLRecordStore) -> None:
    """A store that grows past 1,000 rows (then doubles) refreshes its planner statistics, on both engines:
    without them PostgreSQL probed ``id IN (...)`` through the scope index (a scan of the user's rows)."""
    evs = [event(seq=i) for i in range(1, 701)]
    store.write(events=evs, units=[unit(uid=e.id) for e in evs])  # 1,400 rows written
    with store.engine.connect() as c:
        if store.engine.dialect.name == "sqlite":
            analyzed = c.exec_driver_sql("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'units'").scalar()
        else:
            c.exec_driver_sql("SELECT pg_stat_force_next_flush()")
            analyzed = c.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'units' AND last_analyze IS NOT NULL").scalar()
    assert analyzed
    assert store._analyzed_rows == 700
