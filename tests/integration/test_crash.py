"""Crash safety: kill -9 of the writer / API server while a client ingests (``memsvc bench crash`` at a small
size), stores written by an older schema, and stores indexed with another embedder.

The crash runs use real processes: a ``Memory`` writer child, ``memsvc serve`` on PostgreSQL, SIGKILL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, select, text

from memsvc import Memory, Settings
from memsvc.exceptions import IndexMismatchError
from memsvc.stores.sql import migrate
from tests.conftest import PG_ADMIN_URL, service_missing

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 2, 9, 0, tzinfo=UTC)
HEAD_TABLES = {"events", "units", "unit_sources", "unit_links", "index_meta", "api_keys", "idempotency_keys",
               "video_streams", "unit_facts", "consolidation_state"}


def _assert_crash_safe(res: dict[str, Any], kills: int) -> None:
    assert res["kills"] == kills
    assert res["acknowledged"] > 0
    assert res["recovered"] == res["acknowledged"], res["lost"]
    assert res["duplicates"] == 0, res["duplicate_kinds"]
    assert res["orphan_vectors"] == 0
    assert res["search_found"] == res["search_sample"]
    assert res["events_stored"] == res["acknowledged"]
    assert res["drift_after_reconcile"]["missing_vectors"] == 0
    assert res["drift_after_reconcile"]["missing_payload_indexes"] == 0


@pytest.mark.timeout(300)
def test_killed_embedded_writer_loses_and_doubles_nothing(tmp_path: Path) -> None:
    from memsvc.benchmarks.crash import run_crash

    res = run_crash(60, "embedded", kills=3, seed=3, batch=5, users=2, workdir=tmp_path)
    _assert_crash_safe(res, 3)
    assert res["writer_lives"] == 4


@pytest.fixture
def pg_admin() -> str:
    try:
        eng = create_engine(PG_ADMIN_URL)
        with eng.connect() as c:
            c.execute(text("SELECT 1"))
        eng.dispose()
    except Exception as exc:  # noqa: BLE001 - any driver/connection error means "not reachable"
        service_missing("PostgreSQL", exc)
    return PG_ADMIN_URL


@pytest.mark.timeout(300)
def test_killed_api_server_on_postgres_loses_and_doubles_nothing(tmp_path: Path, pg_admin: str) -> None:
    from memsvc.benchmarks.crash import run_crash

    res = run_crash(40, "service", kills=2, seed=1, batch=5, users=2, pg_admin_url=pg_admin, workdir=tmp_path)
    _assert_crash_safe(res, 2)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_celery_worker_in_bench(tmp_path: Path, redis_url: str) -> None:
    from memsvc.benchmarks.crash import run_crash

    res = run_crash(200, "embedded", kills=1, seed=2, batch=10, users=2, worker_kill=True, redis_url=redis_url,
                    workdir=tmp_path)
    wk = res["worker_kill"]
    assert wk["summaries_at_kill"] > 0
    assert not any(wk["lost_vs_reference"].values()) and not any(wk["extra_vs_reference"].values()), wk
    assert wk["duplicates"] == 0 and wk["orphan_vectors"] == 0 and wk["events"] == res["acknowledged"]


# -- qdrant-edge shards half created by a killed process --------------------------------------------------
@pytest.mark.parametrize("kind", ["vectors", "lexical"])
def test_a_shard_missing_payload_indexes_gets_them_on_open(tmp_path: Path, kind: str) -> None:
    """A process killed between creating a shard and indexing its payload fields left a shard whose
    tenant/user/time filters scan every point; opening it creates the missing indexes."""
    import qdrant_edge as q

    from memsvc.stores.lexical_edge import QdrantEdgeLexicalIndex
    from memsvc.stores.qdrant_edge import QdrantEdgeVectorStore

    path = tmp_path / kind
    path.mkdir()
    if kind == "vectors":
        cfg = q.EdgeConfig(vectors={"dense": q.EdgeVectorParams(size=8, distance=q.Distance.Cosine)})
    else:
        cfg = q.EdgeConfig(sparse_vectors={n: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf) for n in ("bm25", "ctx")})
    shard = q.EdgeShard.create(str(path), cfg)
    shard.update(q.UpdateOperation.create_field_index("tenant", q.KeywordIndexParams(is_tenant=True)))
    shard.close()
    store = QdrantEdgeVectorStore(path, dim=8) if kind == "vectors" else QdrantEdgeLexicalIndex(path)
    try:
        assert store.payload_indexes() == {"tenant", "user", "session", "stream", "level", "start", "end"}
    finally:
        store.close()


# -- re-indexing for a new embedder, killed half way -----------------------------------------------------
def test_reindex_killed_after_dropping_the_index_is_finished_by_the_next_open(tmp_path: Path) -> None:
    from memsvc.service import MemoryService
    from memsvc.stores import VECTOR_STORES

    old = Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing", "options": {"dim": 64}})
    new = Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing", "options": {"dim": 32}})
    with Memory(old) as m:
        m.add([{"content": f"note {i}: green tea with Ann"} for i in range(6)], user_id="u", session_id="s",
              timestamp=T0)
        units = m.stats()["turn"] + m.stats()["episode"]

    real = VECTOR_STORES.create

    def crash(*a: Any, **kw: Any) -> Any:
        raise SystemExit("killed")  # the process dies right after the old index was dropped

    VECTOR_STORES.create = crash  # type: ignore[method-assign]
    try:
        with pytest.raises(SystemExit):
            MemoryService(new, reindex=True)
    finally:
        VECTOR_STORES.create = real  # type: ignore[method-assign]
    with Memory(new) as m:  # the new embedder is recorded; the next open indexes every unit with it
        assert m.stats()["vectors"] == units
        assert m.service.sql.unit_ids_by_state(["pending", "stale"]) == []
        assert m.search("note 3 green tea", user_id="u", limit=3)


# -- a store written with another embedder ---------------------------------------------------------------
def test_same_dimension_other_embedder_is_refused_not_mixed(tmp_path: Path, minilm: Any) -> None:
    """hashing at 384 dims and MiniLM share a dimension: the store refuses by name, nothing is written."""
    hashing = Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing", "options": {"dim": 384}})
    with Memory(hashing) as m:
        m.add("I keep bees on the roof", user_id="u", timestamp=T0)
        before = m.stats()
    with pytest.raises(IndexMismatchError, match="hashing") as err:
        Memory(Settings(data_dir=tmp_path / "m"), embedder=minilm)
    assert minilm.name in str(err.value)
    with Memory(hashing) as m:
        assert m.stats() == before
        assert m.service.sql.meta()["embedder"] != minilm.name


def test_a_shard_of_another_dimension_is_refused_even_when_sql_is_new(tmp_path: Path) -> None:
    """SQL lost or replaced but the vector shard kept: its size still decides, vectors never mix."""
    with Memory(Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing", "options": {"dim": 64}})) as m:
        m.add("hello", user_id="u", timestamp=T0)
    (tmp_path / "m" / "memsvc.db").unlink()
    with pytest.raises(IndexMismatchError, match="dim 64"):
        Memory(Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing", "options": {"dim": 32}}))


# -- stores written by an older schema ------------------------------------------------------------------
def _populate(settings: Settings) -> dict[str, Any]:
    from memsvc.stores.sql_keys import APIKeyStore

    with Memory(settings) as m:
        for u in ("ann", "bo"):
            for d in range(3):
                m.add([{"role": "user", "name": u, "content": f"{u} day {d}: I moved to Porto and adopted a cat "
                        f"named Miso number {k}"} for k in range(5)],
                      user_id=u, session_id=f"{u}-{d}", timestamp=T0 + timedelta(days=d))
        m.add_frames("cam", "ann", [T0 + timedelta(seconds=i) for i in range(4)],
                     embeddings=np.eye(4, 16, dtype=np.float32), captions=["a red door"] * 4, final=True)
        m.consolidate()
        APIKeyStore(m.service.sql.engine).create("acme", name="k")
        return {"stats": m.stats(), "history": [r.id for r in m.history("ann", limit=1000)],
                "rows": _rows(m.service.sql.engine)}


def _rows(engine: Any) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of the tables every revision has (their 0001 columns), as sortable tuples."""
    from memsvc.stores.sql_schema import EventRow, IndexMetaRow, UnitLinkRow, UnitRow, UnitSourceRow

    out = {}
    with engine.connect() as c:
        for tbl, cols in ((EventRow, ("id", "client_id", "text", "seq")), (UnitRow, ("id", "level", "text", "status")),
                          (UnitSourceRow, ("unit_id", "event_id")), (UnitLinkRow, ("parent_id", "child_id")),
                          (IndexMetaRow, ("key", "value"))):
            t = tbl.__table__
            out[t.name] = sorted(tuple(r) for r in c.execute(select(*[t.c[k] for k in cols])))
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgresql")])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    kw: dict[str, Any] = {"data_dir": tmp_path / "m", "embedder": {"backend": "hashing"},
                          "segmenter": {"options": {"max_size": 4}}}
    if request.param == "postgresql":
        kw.update(profile="service", database_url=request.getfixturevalue("pg_url"))
    return Settings(**kw)


def test_populated_store_migrates_down_and_up_keeping_its_data(store_settings: Settings) -> None:
    """Down revision by revision to 0001 and back up: the rows of every table each revision keeps survive
    (foreign-key cascades included); opening the old store upgrades it and everything is found again."""
    want = _populate(store_settings)
    assert want["rows"]["unit_links"] and want["stats"].get("summary")
    url = store_settings.sql_url
    eng = create_engine(url)
    try:
        for rev in ("0003_video", "0002_api_keys", "0001"):
            migrate(url, rev, down=True)
            assert _rows(eng) == want["rows"], f"rows changed going down to {rev}"
        assert set(inspect(eng).get_table_names()) == {"events", "units", "unit_sources", "unit_links", "index_meta",
                                                       "alembic_version"}
        with Memory(store_settings) as m:  # an older version's store: upgraded on open, nothing lost
            assert set(inspect(eng).get_table_names()) == HEAD_TABLES | {"alembic_version"}
            assert _rows(eng) == want["rows"]
            assert m.stats() == want["stats"]
            assert [r.id for r in m.history("ann", limit=1000)] == want["history"]
            assert any("Porto" in h.text for h in m.search("where did ann move", user_id="ann", limit=5))
            m.consolidate()  # progress marks were dropped with their table: a new run finds nothing to add
            assert m.stats() == want["stats"]
    finally:
        eng.dispose()


def test_store_opened_by_the_sdk_migrates_with_foreign_keys_on(tmp_path: Path) -> None:
    """The SDK's engine runs SQLite with foreign keys on; a table rebuilt by a batch migration must not
    cascade-delete provenance rows."""
    from memsvc.stores.sql import SQLRecordStore

    s = Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing"}, segmenter={"options": {"max_size": 4}})
    want = _populate(s)
    store = SQLRecordStore(s.sql_url, auto_migrate=False)
    try:
        migrate(store.engine, "0001", down=True)
        assert _rows(store.engine) == want["rows"]
        migrate(store.engine)
        assert _rows(store.engine) == want["rows"]
        with store.engine.connect() as c:  # the store's connections keep enforcing foreign keys
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


# -- doctor reports and repairs what a crash leaves ------------------------------------------------------
def test_doctor_reports_and_repairs_vector_and_keyword_drift(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from memsvc.cli import app
    from memsvc.stores import LexicalDoc, VectorPoint

    settings = Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing"})
    with Memory(settings) as m:
        ids = m.add([{"content": f"note {i} about the garden"} for i in range(4)], user_id="u", timestamp=T0)
        ghost = "22222222-2222-2222-2222-222222222222"  # index writes whose SQL unit never committed
        m.service.vectors.upsert([VectorPoint(id=ghost, vector=np.ones(m.service.embedder.dim, np.float32),
                                              tenant="default", user="u", level="turn", start=0.0, end=0.0)])
        m.service.lexical.upsert([LexicalDoc(id=ghost, text="ghost", tenant="default", user="u", level="turn",
                                             start=0.0, end=0.0)])
        m.service.vectors.delete([ids[1]])  # index writes lost while SQL says "indexed"
        m.service.lexical.delete([ids[2]])
    runner = CliRunner()
    env = {"MEMSVC_EMBEDDER__BACKEND": "hashing"}
    first = json.loads(runner.invoke(app, ["doctor", "--data-dir", str(tmp_path / "m")], env=env).output)
    assert (first["missing_vectors"], first["orphan_vectors"]) == (1, 1)
    assert (first["missing_lexical"], first["orphan_lexical"]) == (1, 1)
    res = runner.invoke(app, ["doctor", "--data-dir", str(tmp_path / "m"), "--repair"], env=env)
    assert res.exit_code == 0, res.output
    after = json.loads(runner.invoke(app, ["doctor", "--data-dir", str(tmp_path / "m")], env=env).output)
    assert after["missing_vectors"] == after["orphan_vectors"] == after["missing_lexical"] == after["orphan_lexical"] == 0
    assert after["units"] == first["units"] == after["vectors"]
