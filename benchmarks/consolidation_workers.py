"""Celery worker throughput for consolidation: LoCoMo users consolidated by 1 and by 2 worker processes.

    python -m memsvc.benchmarks.consolidation_workers --data /work/shared/data/locomo/locomo_dev.json \
        --evidence /work/shared/tools/evidence.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --redis redis://127.0.0.1:6379/0 [--workers 1,2]

The conversations are ingested once (one user each) into a PostgreSQL template database and an embedded
vector shard; each trial clones the database, gives every worker process its own copy of the shard
(qdrant-edge is single-process; only SQL, the truth, is shared), starts ``celery -A memsvc.worker worker
--pool solo`` processes, queues ``memsvc.consolidate_user`` for every user and waits for all results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text


def _admin(pg: str, sql: str) -> None:
    eng = create_engine(pg, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(sql))
    eng.dispose()


def _db_url(pg: str, name: str) -> str:
    return pg.rsplit("/", 1)[0] + "/" + name


def _ingest(a: argparse.Namespace, tpl: str, base: Path) -> tuple[list[str], int]:
    from memsvc import Memory, Settings
    from memsvc.benchmarks.consolidation import _load

    ev = _load(a.evidence)
    data = ev.load_locomo(a.data)[: a.limit or None]
    users, turns = [], 0
    with Memory(Settings(data_dir=base, database_url=_db_url(a.pg, tpl), profile="service",
                         embedder={"backend": a.embedder})) as m:
        for cid, sessions, _ in data:
            turns += len(ev.ingest_locomo(m, cid, sessions)[0])
            users.append(cid)
    return users, turns


def _trial(a: argparse.Namespace, tpl: str, base: Path, users: list[str], n: int, root: Path) -> dict[str, Any]:
    from memsvc import Settings
    from memsvc.worker import create_app

    db = f"memsvc_cwb_{uuid.uuid4().hex[:8]}"
    _admin(a.pg, f'CREATE DATABASE "{db}" TEMPLATE "{tpl}"')
    queue = f"cwb-{uuid.uuid4().hex[:8]}"
    procs = []
    try:
        for i in range(n):
            d = root / f"w{n}-{i}"
            shutil.copytree(base, d)
            env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}
            env.update(MEMSVC_DATA_DIR=str(d), MEMSVC_DATABASE_URL=_db_url(a.pg, db), MEMSVC_PROFILE="service",
                       MEMSVC_BROKER_URL=a.redis, MEMSVC_WORKER__CONSOLIDATION_QUEUE=queue,
                       MEMSVC_EMBEDDER__BACKEND=a.embedder,
                       HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
            with (root / f"w{n}-{i}.log").open("ab") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "memsvc.worker", "worker", "--pool", "solo", "-Q", queue,
                     "--without-mingle", "--without-gossip", "-n", f"cwb{i}-{queue}@%h", "--loglevel", "WARNING"],
                    env=env, stdout=log, stderr=subprocess.STDOUT))
        client = create_app(Settings(broker_url=a.redis, data_dir=root))
        t0 = time.perf_counter()
        results = [client.send_task("memsvc.consolidate_user", ("default", u), queue=queue) for u in users]
        reports = [r.get(timeout=3600) for r in results]
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
        _admin(a.pg, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return {"workers": n, "wall_s": round(wall, 1), "job_s": round(sum(r["seconds"] for r in reports), 1),
            "summaries": sum(r.get("episode_summaries", 0) for r in reports)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--evidence", required=True)
    ap.add_argument("--pg", required=True, help="admin URL of the PostgreSQL server (creates databases)")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--embedder", default="sentence-transformers", help="embedder backend (hashing: no model)")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    tpl = f"memsvc_cwb_tpl_{uuid.uuid4().hex[:8]}"
    _admin(a.pg, f'CREATE DATABASE "{tpl}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            users, turns = _ingest(a, tpl, root / "base")
            trials = [_trial(a, tpl, root / "base", users, int(n), root) for n in a.workers.split(",")]
    finally:
        _admin(a.pg, f'DROP DATABASE IF EXISTS "{tpl}" WITH (FORCE)')
    for t in trials:
        t["turns_per_s"] = round(turns / t["wall_s"], 2)
    res = {"users": len(users), "turns": turns, "embedder": a.embedder, "trials": trials}
    text_ = json.dumps(res, indent=2)
    print(text_)
    if a.out:
        Path(a.out).write_text(text_ + "\n")
    return res


if __name__ == "__main__":
    main()
