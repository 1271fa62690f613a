"""``memsvc bench crash``: SIGKILL the writer (or the API server, or a Celery worker) while a client
ingests, then check that every acknowledged event is retrievable, none is stored twice and no vector is
orphaned. The result JSON goes to stdout and, with commit/machine/config, to ``benchmarks/results/``.

    memsvc bench crash --events 10000
    memsvc bench crash --events 2000 --profile service
    memsvc bench crash --events 2000 --worker-kill
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from memsvc.cli import bench_app
from memsvc.cli.bench import ResultsDir, _finish, _log, _start
from memsvc.config import Settings

__all__ = ["bench_crash"]


class Profile(StrEnum):
    embedded = "embedded"
    service = "service"


@bench_app.command("crash")
def bench_crash(
    events: Annotated[int, typer.Option("--events", min=1, help="Events the client gets acknowledged.")] = 10_000,
    profile: Annotated[Profile, typer.Option(help="embedded: kill the SDK writer; service: kill `memsvc serve` "
                                                  "(PostgreSQL).")] = Profile.embedded,
    kills: Annotated[int, typer.Option("--kills", min=0, help="SIGKILLs during the ingest.")] = 10,
    seed: Annotated[int, typer.Option(help="Seeds the kill times and the search sample.")] = 0,
    embedder: Annotated[str, typer.Option(help="Embedder backend (hashing: no model; sentence-transformers: "
                                               "MiniLM).")] = "hashing",
    worker_kill: Annotated[bool, typer.Option("--worker-kill", help="Then kill a real Celery worker "
                                                                    "mid-consolidation (Redis broker).")] = False,
    batch: Annotated[int, typer.Option(min=1, help="Events per add call.")] = 10,
    users: Annotated[int, typer.Option(min=1, help="Users the batches rotate over.")] = 4,
    pg: Annotated[str | None, typer.Option("--pg", help="PostgreSQL admin URL for --profile service (a fresh "
                                                      "database is created on its server).")] = None,
    redis: Annotated[str, typer.Option("--redis", help="Celery broker for --worker-kill.")] = "redis://127.0.0.1:6379/0",
    workdir: Annotated[Path | None, typer.Option(help="Keep the stores and logs here (default: a temporary "
                                                      "folder).")] = None,
    results_dir: ResultsDir = None,
) -> None:
    """Crash safety under kill -9: acknowledged, recovered, duplicates, orphan_vectors, kills."""
    from memsvc.benchmarks.crash import run_crash

    started = _start()
    result = run_crash(events, profile.value, kills, seed, embedder, worker_kill, pg, redis, batch, users, workdir,
                       progress=_log)
    config = {"events": events, "profile": profile.value, "kills": kills, "seed": seed, "embedder": embedder,
              "worker_kill": worker_kill, "batch": batch, "users": users}
    _finish("crash", result, Settings(embedder={"backend": embedder}), config, results_dir, started)
