"""``memsvc bench consolidation`` and ``memsvc bench consolidation-workers``: LoCoMo before/after one
consolidation pass, and Celery worker throughput. Result JSON on stdout and in ``benchmarks/results/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from memsvc.cli import bench_app
from memsvc.cli.bench import ResultsDir, _finish, _log, _start, parse_budgets

__all__ = ["bench_consolidation", "bench_consolidation_workers"]


def _settings(overrides: str | None):  # type: ignore[no-untyped-def]
    from memsvc.config import Settings

    try:
        extra = json.loads(overrides) if overrides else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--settings must be a JSON object: {exc}") from exc
    if not isinstance(extra, dict):
        raise typer.BadParameter("--settings must be a JSON object")
    return Settings(**extra), extra


@bench_app.command("consolidation")
def bench_consolidation(
    data: Annotated[Path, typer.Option("--data", exists=True, dir_okay=False, help="LoCoMo JSON file.")],
    budgets: Annotated[str, typer.Option(help="Comma-separated token budgets.")] = "500,1000,2000,4000",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N conversations.")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Conversations run at once, in separate processes.")] = 1,
    settings_json: Annotated[str | None, typer.Option(
        "--settings", help='Settings overrides as JSON, e.g. \'{"consolidation": {"summary_ratio": 0.5}}\'.')] = None,
    results_dir: ResultsDir = None,
) -> None:
    """Units, stored tokens and evidence recall before/after one pass; seconds per 1,000 turns."""
    from memsvc.benchmarks.consolidation import run_consolidation

    started = _start()
    bs = parse_budgets(budgets)
    settings, extra = _settings(settings_json)
    result = run_consolidation(data, bs, settings, limit, progress=_log, jobs=jobs)
    config = {"data": str(data), "budgets": bs, "limit": limit, "jobs": jobs, "overrides": extra}
    _finish("consolidation", result, settings, config, results_dir, started)


@bench_app.command("consolidation-workers")
def bench_consolidation_workers(
    data: Annotated[Path, typer.Option("--data", exists=True, dir_okay=False, help="LoCoMo JSON file.")],
    pg: Annotated[str, typer.Option(help="Admin URL of a PostgreSQL server (the command creates databases).")] = (
        "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    redis: Annotated[str, typer.Option(help="Redis broker URL.")] = "redis://127.0.0.1:6379/0",
    workers: Annotated[str, typer.Option(help="Comma-separated worker process counts, one trial each.")] = "1,2",
    users: Annotated[int, typer.Option(min=1, help="Users (M): LoCoMo conversations, repeated as needed.")] = 10,
    embedder: Annotated[str, typer.Option(help="Embedder backend of ingest and workers.")] = "sentence-transformers",
    results_dir: ResultsDir = None,
) -> None:
    """Enqueue memsvc.consolidate_user for M users; users/s and turns/s with 1 and 2 worker processes."""
    from memsvc.benchmarks.consolidation_workers import run_workers

    started = _start()
    counts = parse_budgets(workers)
    settings, _ = _settings(None)
    result = run_workers(data, pg, redis, counts, users, embedder, progress=_log)
    config = {"data": str(data), "workers": counts, "users": users, "embedder": embedder, "redis": redis}
    _finish("consolidation-workers", result, settings, config, results_dir, started)
