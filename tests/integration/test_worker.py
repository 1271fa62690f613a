"""Celery workers on the real local Redis: tasks run, retry only when retryable, are idempotent, never
interleave on one user, and a worker killed mid-job loses or duplicates nothing after the next run.

Thread workers use celery's testing worker (``celery.contrib.testing.worker``) sharing the test's
service; the kill test runs real ``celery -A memsvc.worker worker`` processes. Never eager mode.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from memsvc import Memory, Settings
from memsvc.consolidation import JOBS
from memsvc.exceptions import InvalidInputError, StoreUnavailable

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
T0 = datetime(2023, 5, 8, 13, 0, tzinfo=UTC)
TOPICS = ["pottery class", "golden retriever Rex", "marathon training", "night shifts at the hospital",
          "the library mural", "moving to Porto", "guitar lessons", "sister Clara's wedding"]


def conversation(user: str, n: int) -> list[dict[str, str]]:
    return [{"role": "user", "name": "Ann" if i % 2 == 0 else "Mel",
             "content": f"{user} talks about {TOPICS[(i // 4) % len(TOPICS)]}, detail number {i} of the story."}
            for i in range(n)]


def base_settings(path: Path, redis_url: str, tag: str, **kw: Any) -> Settings:
    opts: dict[str, Any] = {
        "data_dir": path, "embedder": {"backend": "hashing"}, "segmenter": {"options": {"max_size": 4}},
        "tenant": f"t{tag}", "broker_url": redis_url,
        "worker": {"consolidation_queue": f"cons-{tag}", "indexing_queue": f"idx-{tag}", "retry_backoff_s": 0.2,
                   "lock_timeout_s": 20, "visibility_timeout_s": 3},
    }
    opts.update(kw)
    return Settings(**opts)


@pytest.fixture
def thread_worker(tmp_path: Path, redis_url: str) -> Iterator[tuple[Memory, Any]]:
    from celery.contrib.testing.tasks import ping  # noqa: F401  (the worker's start-up ping)
    from celery.contrib.testing.worker import start_worker

    import memsvc.worker.tasks  # noqa: F401  (registers the tasks)
    from memsvc.worker import create_app
    from memsvc.worker.tasks import use_service

    tag = uuid.uuid4().hex[:10]
    settings = base_settings(tmp_path / "m", redis_url, tag, vector={"backend": "memory"})
    mem = Memory(settings)
    app = create_app(settings)
    use_service(app, mem.service)
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=True, shutdown_timeout=30,
                      queues=[settings.worker.consolidation_queue, settings.worker.indexing_queue]):
        yield mem, app
    mem.close()


def test_rabbitmq_broker(tmp_path: Path, amqp_url: str) -> None:
    """The same task through RabbitMQ (per-user locks: flock files, the broker has no locks)."""
    from celery.contrib.testing.tasks import ping  # noqa: F401
    from celery.contrib.testing.worker import start_worker

    import memsvc.worker.tasks  # noqa: F401
    from memsvc.worker import create_app
    from memsvc.worker.tasks import use_service

    tag = uuid.uuid4().hex[:10]
    settings = base_settings(tmp_path / "m", amqp_url, tag, vector={"backend": "memory"})
    with Memory(settings) as mem:
        mem.add(conversation("ann", 12), user_id="ann", session_id="s1", timestamp=T0)
        app = create_app(settings)
        use_service(app, mem.service)
        with start_worker(app, pool="threads", concurrency=1, shutdown_timeout=30,
                          queues=[settings.worker.consolidation_queue]):
            r = app.send_task("memsvc.consolidate_user", (settings.tenant, "ann")).get(timeout=120)
        assert r["episode_summaries"] >= 2
        assert (tmp_path / "m" / "locks").is_dir()


def _state(mem: Memory) -> list[tuple[Any, ...]]:
    with mem.service.sql.session() as s:
        rows = s.execute(text("SELECT id, level, status, text, valid_to, index_state, deleted_at, meta FROM units "
                              "ORDER BY id"))
        units = [tuple(r) for r in rows]
        links = [tuple(r) for r in s.execute(text("SELECT parent_id, child_id FROM unit_links ORDER BY 1, 2"))]
        srcs = [tuple(r) for r in s.execute(text("SELECT unit_id, event_id, position FROM unit_sources ORDER BY 1, 2"))]
    return [*units, *links, *srcs, tuple(sorted(mem.service.vectors.ids()))]


def test_tasks_run_and_are_idempotent(thread_worker: tuple[Memory, Any]) -> None:
    mem, app = thread_worker
    tenant = mem.service.tenant
    mem.add(conversation("ann", 24), user_id="ann", session_id="s1", timestamp=T0)
    r = app.send_task("memsvc.consolidate_user", (tenant, "ann")).get(timeout=120)
    assert r["episode_summaries"] >= 5 and r["user"] == "ann"
    assert mem.search("pottery class", user_id="ann", levels=["summary"], limit=3)
    state = _state(mem)
    again = app.send_task("memsvc.consolidate_user", (tenant, "ann")).get(timeout=120)
    assert again.get("episode_summaries", 0) == 0
    assert _state(mem) == state
    queued = app.send_task("memsvc.tick", (), {"all_users": True}).get(timeout=60)
    assert queued["queued"] == 1
    assert app.send_task("memsvc.reconcile", ()).get(timeout=60)["orphans_removed"] == 0


def test_every_job_twice_gives_the_same_state(thread_worker: tuple[Memory, Any]) -> None:
    """Each job, then each periodic task, run twice through the worker: the second run changes nothing."""
    from memsvc.consolidation import DEFAULT_JOBS

    mem, app = thread_worker
    tenant = mem.service.tenant
    turns = conversation("dee", 16) + [
        {"role": "user", "name": "Ann", "content": "I moved to Lisbon last spring for the new research job."},
        {"role": "user", "name": "Ann", "content": "Oh wow, thanks! Anyway, I moved to Porto in June for the lab."},
    ]
    mem.add(turns, user_id="dee", session_id="s1", timestamp=T0)
    mem.add(turns[4:8], user_id="dee", session_id="s1", timestamp=T0)  # a retried write: exact duplicates
    mem.add(conversation("dee", 8), user_id="dee", session_id="s2", timestamp=T0 + timedelta(days=2))
    later = (datetime.now(UTC) + timedelta(days=250)).isoformat()  # decay has something to compress
    did: dict[str, int] = {}
    for job in DEFAULT_JOBS:
        first = app.send_task("memsvc.consolidate_user", (tenant, "dee"), {"jobs": [job], "now": later}).get(timeout=120)
        did.update({k: v for k, v in first.items() if isinstance(v, int) and v})
        state = _state(mem)
        again = app.send_task("memsvc.consolidate_user", (tenant, "dee"), {"jobs": [job], "now": later}).get(timeout=120)
        assert _state(mem) == state, f"{job} changed the state when run again: {again}"
    assert {"duplicates_removed", "facts_found", "episode_summaries", "turn_extracts", "compressed"} <= set(did), did
    for name, kwargs in (("memsvc.tick", {"all_users": True}), ("memsvc.reconcile", {}),
                         ("memsvc.index_pending", {})):
        app.send_task(name, (), kwargs).get(timeout=120)
        time.sleep(0.5)  # tick fans out consolidate_user tasks
        state = _state(mem)
        app.send_task(name, (), kwargs).get(timeout=120)
        time.sleep(0.5)
        assert _state(mem) == state, name


def test_retries_only_retryable_errors(thread_worker: tuple[Memory, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    mem, app = thread_worker
    mem.add(conversation("bob", 4), user_id="bob", session_id="s1", timestamp=T0)
    calls = {"flaky": 0, "broken": 0}

    def flaky(svc: Any, scope: Any, now: Any) -> dict[str, int]:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise StoreUnavailable("database restarting")
        return {"flaky_ok": 1}

    def broken(svc: Any, scope: Any, now: Any) -> dict[str, int]:
        calls["broken"] += 1
        raise InvalidInputError("a bug, not a hiccup")

    monkeypatch.setitem(JOBS, "flaky", flaky)
    monkeypatch.setitem(JOBS, "broken", broken)
    tenant = mem.service.tenant
    assert app.send_task("memsvc.consolidate_user", (tenant, "bob"), {"jobs": ["flaky"]}).get(timeout=60)["flaky_ok"] == 1
    assert calls["flaky"] == 3
    with pytest.raises(InvalidInputError):
        app.send_task("memsvc.consolidate_user", (tenant, "bob"), {"jobs": ["broken"]}).get(timeout=60)
    assert calls["broken"] == 1


def test_two_workers_never_interleave_on_one_user(thread_worker: tuple[Memory, Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mem, app = thread_worker
    spans: dict[str, list[tuple[float, float]]] = {"ann": [], "cy": []}
    guard = threading.Lock()

    def slow(svc: Any, scope: Any, now: Any) -> dict[str, int]:
        t = time.monotonic()
        time.sleep(0.6)
        with guard:
            spans[scope.user].append((t, time.monotonic()))
        return {"slow": 1}

    monkeypatch.setitem(JOBS, "slow", slow)
    tenant = mem.service.tenant
    results = [app.send_task("memsvc.consolidate_user", (tenant, u), {"jobs": ["slow"]}) for u in ("ann", "ann", "ann")]
    results.append(app.send_task("memsvc.consolidate_user", (tenant, "cy"), {"jobs": ["slow"]}))
    assert [r.get(timeout=120)["slow"] for r in results] == [1, 1, 1, 1]
    ann = sorted(spans["ann"])
    assert len(ann) == 3
    assert all(a[1] <= b[0] for a, b in zip(ann, ann[1:], strict=False)), f"overlapping runs: {ann}"


def _worker_proc(settings: Settings, env_extra: dict[str, str], log: Path, app: str = "memsvc.worker",
                 name: str | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}
    env.update({
        "MEMSVC_DATA_DIR": str(settings.data_dir), "MEMSVC_TENANT": settings.tenant,
        "MEMSVC_EMBEDDER__BACKEND": "hashing", "MEMSVC_SEGMENTER__OPTIONS": '{"max_size": 4}',
        "MEMSVC_BROKER_URL": settings.broker_url,
        "MEMSVC_WORKER__CONSOLIDATION_QUEUE": settings.worker.consolidation_queue,
        "MEMSVC_WORKER__INDEXING_QUEUE": settings.worker.indexing_queue,
        "MEMSVC_WORKER__VISIBILITY_TIMEOUT_S": "3", "MEMSVC_WORKER__LOCK_TIMEOUT_S": "4",
        "MEMSVC_WORKER__RETRY_BACKOFF_S": "0.5",
        "PYTHONPATH": os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
    })
    env.update(env_extra)
    cmd = [sys.executable, "-m", "celery", "-A", app, "worker", "--pool", "solo", "--loglevel", "INFO",
           "-Q", f"{settings.worker.consolidation_queue},{settings.worker.indexing_queue}", "--without-mingle",
           "--without-gossip", "-n", name or f"w{uuid.uuid4().hex[:6]}@%h"]
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _count(db: Path, sql: str) -> int:
    eng = create_engine(f"sqlite:///{db}")
    try:
        with eng.connect() as c:
            return int(c.execute(text(sql)).scalar() or 0)
    finally:
        eng.dispose()


def _snapshot(m: Memory) -> dict[str, Any]:
    from memsvc.stores.sql_schema import UnitFactRow, UnitLinkRow, UnitRow, UnitSourceRow

    with m.service.sql.session() as s:
        units = sorted((u.id, u.level, u.status, u.text, u.valid_to, u.deleted_at) for u in s.scalars(select(UnitRow)))
        srcs = sorted((r.unit_id, r.event_id) for r in s.scalars(select(UnitSourceRow)))
        links = sorted((r.parent_id, r.child_id) for r in s.scalars(select(UnitLinkRow)))
        facts = sorted((f.unit_id, f.attribute) for f in s.scalars(select(UnitFactRow)))
        events = s.scalar(select(func.count()).select_from(UnitRow).where(UnitRow.level == "turn"))
    return {"units": units, "sources": srcs, "links": links, "facts": facts, "turns": events,
            "vectors": sorted(m.service.vectors.ids())}


@pytest.mark.timeout(300)
def test_killed_worker_leaves_no_duplicate_or_lost_memory(tmp_path: Path, redis_url: str) -> None:
    from memsvc.worker import create_app

    sys.path.insert(0, str(HERE))
    tag = uuid.uuid4().hex[:10]
    slow = {"MEMSVC_CONSOLIDATION__SUMMARIZER__BACKEND": "slow_summarizer.SlowSummarizer"}
    settings = base_settings(tmp_path / "live", redis_url, tag,
                             consolidation={"summarizer": {"backend": "slow_summarizer.SlowSummarizer"}})
    users = ["u1", "u2", "u3"]
    with Memory(settings) as m:
        for u in users:
            m.add(conversation(u, 40), user_id=u, session_id=f"{u}-s1", timestamp=T0)
            m.add(conversation(u, 12), user_id=u, session_id=f"{u}-s2", timestamp=T0 + timedelta(days=3))
    shutil.copytree(tmp_path / "live", tmp_path / "ref")
    client = create_app(settings)
    log = tmp_path / "worker.log"
    db = tmp_path / "live" / "memsvc.db"
    proc = _worker_proc(settings, slow, log)
    try:
        for u in users:
            client.send_task("memsvc.consolidate_user", (settings.tenant, u))
        deadline = time.monotonic() + 120
        while _count(db, "SELECT count(*) FROM units WHERE level = 'summary'") < 3:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # mid-job: some summaries written, the rest not
        proc.wait(30)
        partial = _count(db, "SELECT count(*) FROM units WHERE level = 'summary'")
        proc = _worker_proc(settings, slow, log)  # the next worker: redelivered tasks plus a new round
        results = [client.send_task("memsvc.consolidate_user", (settings.tenant, u)) for u in users]
        for r in results:
            r.get(timeout=180)
        time.sleep(4)  # let a redelivered copy of the killed task run too (it must change nothing)
        deadline = time.monotonic() + 60
        while _count(db, "SELECT count(*) FROM units WHERE index_state = 'pending'") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    with Memory(settings) as live:
        got = _snapshot(live)
    ref_settings = settings.model_copy(update={"data_dir": tmp_path / "ref"})
    with Memory(ref_settings) as ref:
        for u in users:
            ref.consolidate(user_id=u)
        want = _snapshot(ref)
    assert 0 < partial < len([x for x in want["units"] if x[1] == "summary"])
    for key in want:  # same ids, texts, provenance, facts and vectors: nothing lost, nothing twice
        extra = sorted(set(got[key]) - set(want[key])) if isinstance(got[key], list) else got[key]
        lost = sorted(set(want[key]) - set(got[key])) if isinstance(want[key], list) else want[key]
        assert got[key] == want[key], f"{key}: extra {extra[:3]} lost {lost[:3]}"


@pytest.mark.timeout(300)
def test_two_worker_processes_never_interleave_on_one_user(tmp_path: Path, redis_url: str) -> None:
    """Two real ``celery worker`` processes take tasks for one user at once: the Redis lock serialises them."""
    from memsvc.worker import create_app

    tag = uuid.uuid4().hex[:10]
    settings = base_settings(tmp_path / "m", redis_url, tag, vector={"backend": "memory"},
                             lexical={"backend": "memory"})
    with Memory(settings) as m:  # creates the database; each worker opens it (indexes: per process)
        m.add(conversation("ann", 4), user_id="ann", session_id="s1", timestamp=T0)
    spans = tmp_path / "spans.log"
    env = {"MEMSVC_VECTOR__BACKEND": "memory", "MEMSVC_LEXICAL__BACKEND": "memory",
           "MEMSVC_TEST_SPAN_LOG": str(spans), "MEMSVC_TEST_SPAN_S": "0.5"}
    names = [f"span{i}-{tag}@test" for i in range(2)]
    procs = [_worker_proc(settings, env, tmp_path / f"w{i}.log", app="span_app", name=n) for i, n in enumerate(names)]
    client = create_app(settings)
    try:
        deadline = time.monotonic() + 120
        while len(client.control.ping(destination=names, timeout=1.0)) < 2:
            assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, \
                (tmp_path / "w0.log").read_text()[-3000:]
        users = ["ann"] * 4 + ["cy"] * 2
        results = [client.send_task("memsvc.consolidate_user", (settings.tenant, u), {"jobs": ["span"]}) for u in users]
        assert [r.get(timeout=180)["span"] for r in results] == [1] * len(users)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    rows = [ln.split() for ln in spans.read_text().splitlines()]
    assert sorted(r[0] for r in rows) == sorted(users)
    assert len({r[1] for r in rows}) == 2, "both worker processes ran jobs"
    ann = sorted((float(r[2]), float(r[3]), r[1]) for r in rows if r[0] == "ann")
    assert all(a[1] <= b[0] for a, b in zip(ann, ann[1:], strict=False)), f"overlapping runs on one user: {ann}"


@pytest.mark.timeout(300)
def test_standard_celery_worker_with_beat_on_the_embedded_profile(tmp_path: Path, redis_url: str) -> None:
    """``celery -A memsvc.worker worker -B`` as documented (prefork pool, embedded qdrant-edge index): the
    beat queues every user with work and each is consolidated, with no task failing."""
    tag = uuid.uuid4().hex[:10]
    settings = base_settings(tmp_path / "m", redis_url, tag)
    users = ["ann", "bob", "cy"]
    with Memory(settings) as m:
        for u in users:
            m.add(conversation(u, 12), user_id=u, session_id=f"{u}-s1", timestamp=T0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}
    env.update({
        "MEMSVC_DATA_DIR": str(settings.data_dir), "MEMSVC_TENANT": settings.tenant,
        "MEMSVC_EMBEDDER__BACKEND": "hashing", "MEMSVC_SEGMENTER__OPTIONS": '{"max_size": 4}',
        "MEMSVC_BROKER_URL": redis_url, "MEMSVC_CONSOLIDATION__INTERVAL_S": "2",
        "MEMSVC_WORKER__CONSOLIDATION_QUEUE": settings.worker.consolidation_queue,
        "MEMSVC_WORKER__INDEXING_QUEUE": settings.worker.indexing_queue,
    })
    log = tmp_path / "worker.log"
    cmd = [sys.executable, "-m", "celery", "-A", "memsvc.worker", "worker", "-B", "--loglevel", "INFO",
           "-Q", f"{settings.worker.consolidation_queue},{settings.worker.indexing_queue}",
           "--schedule", str(tmp_path / "beat-schedule"), "-n", f"std-{tag}@%h"]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 180
        while log.read_text().count("memsvc.consolidate_user[") < 2 * len(users):  # received + finished
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        time.sleep(3)  # another tick: nothing left to do
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    out_text = log.read_text()
    assert "ERROR" not in out_text and "raised" not in out_text, out_text[-3000:]
    with Memory(settings) as m:
        assert all(m.stats(u).get("summary", 0) >= 1 for u in users)
        from memsvc.consolidation import users_with_work

        assert users_with_work(m.service) == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_consolidation_workers(tmp_path: Path, redis_url: str, pg_url: str) -> None:
    """The throughput benchmark end to end on a tiny LoCoMo file: real worker processes, PostgreSQL, Redis."""
    from memsvc.benchmarks.consolidation_workers import run_workers
    from tests.bench_fixtures import write_locomo

    res = run_workers(write_locomo(tmp_path), pg_url, redis_url, workers=(1, 2), n_users=3, embedder="hashing")
    assert res["users"] == 3 and res["turns"] == 7 + 4 + 7  # conv-a, conv-b, conv-a again
    assert [t["workers"] for t in res["trials"]] == [1, 2]
    for t in res["trials"]:
        assert t["wall_s"] > 0 and t["users_per_s"] > 0 and t["turns_per_s"] > 0 and t["episode_summaries"] >= 1
