"""Celery worker throughput for consolidation: M users consolidated by 1 and by 2 worker processes.

    memsvc bench consolidation-workers --data ../shared/data/locomo/locomo_dev.json [--users 10] \
        [--workers 1,2] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test] [--redis redis://127.0.0.1:6379/0]

The LoCoMo conversations are ingested once, one user each (repeated as ``conv-26~2`` ... when M is larger
than the file), into a PostgreSQL template database and an embedded vector shard. Each trial clones the
database, gives every worker process its own copy of the shard (qdrant-edge is single-process; SQL, the
truth, is shared), starts ``celery -A memsvc.worker worker --pool solo`` processes on a private queue,
waits until every worker answers a ping, queues ``memsvc.consolidate_user`` for every user and waits for
all results. ``wall_s`` runs from the first enqueue to the last result (each worker's first task also
loads the embedder); ``job_s`` sums the jobs' own times.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from memsvc.benchmarks.datasets import ingest_locomo, load_locomo

__all__ = ["run_workers"]


def _admin(pg: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(pg, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(sql))
    eng.dispose()


def _db_url(pg: str, name: str) -> str:
    return pg.rsplit("/", 1)[0] + "/" + name


def _ingest(data: str | Path, pg: str, tpl: str, base: Path, n_users: int, embedder: str) -> tuple[list[str], int]:
    from memsvc import Memory, Settings

    convs = load_locomo(data)
    users: list[str] = []
    turns = 0
    with Memory(Settings(data_dir=base, database_url=_db_url(pg, tpl), profile="service",
                         embedder={"backend": embedder})) as m:
        for i in range(n_users):
            conv = convs[i % len(convs)]
            user = conv.sample_id if i < len(convs) else f"{conv.sample_id}~{i // len(convs) + 1}"
            ingest_locomo(m, conv, user)
            users.append(user)
            turns += conv.n_turns
    return users, turns


def _trial(pg: str, redis: str, tpl: str, base: Path, users: list[str], n: int, root: Path,
           embedder: str) -> dict[str, Any]:
    from memsvc import Settings
    from memsvc.worker import create_app

    db = f"memsvc_cwb_{uuid.uuid4().hex[:8]}"
    _admin(pg, f'CREATE DATABASE "{db}" TEMPLATE "{tpl}"')
    queue = f"cwb-{uuid.uuid4().hex[:8]}"
    procs = []
    names = [f"cwb{i}-{queue}@bench" for i in range(n)]
    try:
        for i in range(n):
            d = root / f"w{n}-{i}"
            shutil.copytree(base, d)
            env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}
            env.update(MEMSVC_DATA_DIR=str(d), MEMSVC_DATABASE_URL=_db_url(pg, db), MEMSVC_PROFILE="service",
                       MEMSVC_BROKER_URL=redis, MEMSVC_WORKER__CONSOLIDATION_QUEUE=queue,
                       MEMSVC_EMBEDDER__BACKEND=embedder,
                       HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
            with (root / f"w{n}-{i}.log").open("ab") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "memsvc.worker", "worker", "--pool", "solo", "-Q", queue,
                     "--without-mingle", "--without-gossip", "-n", names[i], "--loglevel", "WARNING"],
                    env=env, stdout=log, stderr=subprocess.STDOUT))
        client = create_app(Settings(broker_url=redis, data_dir=root))
        deadline = time.monotonic() + 300
        while len(client.control.ping(destination=names, timeout=1.0)) < n:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"workers did not start; see {root}/w{n}-*.log")
        t0 = time.perf_counter()
        results = [client.send_task("memsvc.consolidate_user", ("default", u), queue=queue) for u in users]
        reports = [r.get(timeout=3600) for r in results]
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
        _admin(pg, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return {"workers": n, "wall_s": round(wall, 2), "job_s": round(sum(r["seconds"] for r in reports), 2),
            "episode_summaries": sum(r.get("episode_summaries", 0) for r in reports)}


def run_workers(
    data: str | Path,
    pg: str,
    redis: str = "redis://127.0.0.1:6379/0",
    workers: Sequence[int] = (1, 2),
    n_users: int = 10,
    embedder: str = "sentence-transformers",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ingest ``n_users`` LoCoMo users once, then one trial per worker count; users/s and turns/s."""
    tpl = f"memsvc_cwb_tpl_{uuid.uuid4().hex[:8]}"
    _admin(pg, f'CREATE DATABASE "{tpl}"')
    try:
        with tempfile.TemporaryDirectory(prefix="memsvc-cwb-") as tmp:
            root = Path(tmp)
            users, turns = _ingest(data, pg, tpl, root / "base", n_users, embedder)
            if progress:
                progress(f"ingested {len(users)} users, {turns} turns")
            trials = []
            for n in workers:
                t = _trial(pg, redis, tpl, root / "base", users, n, root, embedder)
                t["users_per_s"] = round(len(users) / t["wall_s"], 3)
                t["turns_per_s"] = round(turns / t["wall_s"], 1)
                trials.append(t)
                if progress:
                    progress(f"{n} worker(s): {t['wall_s']} s, {t['users_per_s']} users/s, {t['turns_per_s']} turns/s")
    finally:
        _admin(pg, f'DROP DATABASE IF EXISTS "{tpl}" WITH (FORCE)')
    base = trials[0]["wall_s"] if trials else 0.0
    for t in trials:
        t["speedup"] = round(base / t["wall_s"], 2) if t["wall_s"] else 0.0
    return {"users": len(users), "turns": turns, "embedder": embedder, "trials": trials}
