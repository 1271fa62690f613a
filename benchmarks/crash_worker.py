"""``memsvc bench crash --worker-kill``: SIGKILL a real Celery worker in the middle of consolidation.

On the store the crash run produced: a copy is kept as the reference; a ``celery -A memsvc.worker worker
--pool solo`` process (Redis broker) gets ``memsvc.consolidate_user`` for every user and is SIGKILLed at a
random moment after its first summary is written; a new worker then takes the redelivered tasks plus a
new round for every user. The reference copy is consolidated in-process once, without kills. Units
(ids, levels, texts, status), provenance (sources and links) and vectors must be the same: a killed job
neither loses nor doubles a memory, and the events and turns consolidation summarised stay intact.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, func, select, text

if TYPE_CHECKING:
    from memsvc.benchmarks.crash import Plan
    from memsvc.config import Settings

__all__ = ["run_worker_kill", "snapshot"]


def snapshot(m: Any) -> dict[str, list[Any]]:
    """Units, provenance and vector ids of a store, as sortable tuples."""
    from memsvc.stores.sql_schema import UnitLinkRow, UnitRow, UnitSourceRow

    with m.service.sql.session() as s:
        units = sorted((u.id, u.level, u.status, u.text, u.deleted_at is not None) for u in s.scalars(select(UnitRow)))
        srcs = sorted((r.unit_id, r.event_id) for r in s.scalars(select(UnitSourceRow)))
        links = sorted((r.parent_id, r.child_id) for r in s.scalars(select(UnitLinkRow)))
    return {"units": units, "sources": srcs, "links": links, "vectors": sorted(m.service.vectors.ids())}


def _count_summaries(url: str) -> int:
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            return int(c.execute(text("SELECT count(*) FROM units WHERE level = 'summary'")).scalar() or 0)
    finally:
        eng.dispose()


@contextlib.contextmanager
def _reference(settings: Settings, root: Path) -> Iterator[Settings]:
    """A copy of the store (data directory, and the PostgreSQL database when there is one)."""
    ref_dir = root / "reference"
    shutil.copytree(settings.data_dir, ref_dir)
    if not settings.database_url:
        yield settings.model_copy(update={"data_dir": ref_dir})
        return
    base, src = settings.database_url.rsplit("/", 1)
    name = f"{src}_ref"[:63]
    eng = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{src}"'))
        yield settings.model_copy(update={"data_dir": ref_dir, "database_url": f"{base}/{name}"})
    finally:
        with eng.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()


def _worker(settings: Settings, redis_url: str, queue: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}
    env.update(MEMSVC_DATA_DIR=str(settings.data_dir), MEMSVC_TENANT=settings.tenant,
               MEMSVC_PROFILE=settings.profile, MEMSVC_EMBEDDER__BACKEND=settings.embedder.backend,
               MEMSVC_BROKER_URL=redis_url, MEMSVC_WORKER__CONSOLIDATION_QUEUE=queue,
               MEMSVC_WORKER__INDEXING_QUEUE=f"{queue}-idx", MEMSVC_WORKER__VISIBILITY_TIMEOUT_S="3",
               MEMSVC_WORKER__LOCK_TIMEOUT_S="4", MEMSVC_WORKER__RETRY_BACKOFF_S="0.5",
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if settings.database_url:
        env["MEMSVC_DATABASE_URL"] = settings.database_url
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, "-m", "celery", "-A", "memsvc.worker", "worker", "--pool", "solo", "--loglevel", "INFO",
           "-Q", f"{queue},{queue}-idx", "--without-mingle", "--without-gossip", "-n", f"crash-{queue}@%h"]
    with log.open("ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def run_worker_kill(settings: Settings, plan: Plan, root: Path, redis_url: str, seed: int,
                    progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Kill a worker mid-consolidation, finish with a new one, compare with an unkilled reference."""
    from memsvc import Memory
    from memsvc.benchmarks.crash_check import drift, duplicates
    from memsvc.stores.sql_schema import EventRow, UnitRow
    from memsvc.worker import create_app

    rng = random.Random(seed)
    users = sorted({plan.user(b) for b in range(plan.batches)})
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    log = root / "worker.log"
    with _reference(settings, root) as ref_settings:
        client = create_app(settings.model_copy(update={"broker_url": redis_url}))
        proc = _worker(settings, redis_url, queue, log)
        try:
            first = [client.send_task("memsvc.consolidate_user", (settings.tenant, u), queue=queue) for u in users]
            deadline = time.monotonic() + 600
            while _count_summaries(settings.sql_url) == 0:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker wrote no summary; see {log}")
                time.sleep(0.02)
            time.sleep(rng.random() * 2.0)
            finished_before_kill = sum(r.ready() for r in first)
            proc.send_signal(signal.SIGKILL)
            proc.wait(60)
            at_kill = _count_summaries(settings.sql_url)
            progress(f"worker killed with {at_kill} summaries written, {finished_before_kill}/{len(users)} jobs done")
            proc = _worker(settings, redis_url, queue, log)
            again = [client.send_task("memsvc.consolidate_user", (settings.tenant, u), queue=queue) for u in users]
            for r in again:
                r.get(timeout=1800)
            time.sleep(5)  # a redelivered copy of the killed task runs too (visibility timeout 3 s)
            client.send_task("memsvc.index_pending", (), queue=f"{queue}-idx").get(timeout=600)
        finally:
            _stop(proc)
            client.close()
        with Memory(settings) as live:
            got = snapshot(live)
            dup = duplicates(live.service)
            left = drift(live.service)
            with live.service.sql.session() as s:
                events = int(s.scalar(select(func.count()).select_from(EventRow)) or 0)
                turns = int(s.scalar(select(func.count()).select_from(UnitRow).where(
                    UnitRow.level == "turn", UnitRow.deleted_at.is_(None))) or 0)
        with Memory(ref_settings) as ref:
            for u in users:
                ref.consolidate(user_id=u)
            want = snapshot(ref)
    lost = {k: len(set(want[k]) - set(got[k])) for k in want}
    extra = {k: len(set(got[k]) - set(want[k])) for k in want}
    summaries = sum(1 for u in got["units"] if u[1] == "summary" and not u[4])
    return {"kills": 1, "summaries_at_kill": at_kill, "jobs_done_at_kill": finished_before_kill, "jobs": len(users),
            "summaries": summaries, "lost_vs_reference": lost, "extra_vs_reference": extra,
            "duplicates": sum(dup.values()), "events": events, "turns": turns,
            "orphan_vectors": left["orphan_vectors"], "missing_vectors": left["missing_vectors"]}
