"""``memsvc bench fuzz``: schemathesis-generated requests against a served app (``memsvc.benchmarks.fuzz``)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from memsvc.cli import bench_app


@bench_app.command("fuzz")
def bench_fuzz(
    requests: Annotated[int, typer.Option("--requests", min=1, help="Generated requests to send.")] = 5000,
    seed: Annotated[int, typer.Option(help="Hypothesis seed of the first round.")] = 0,
    embedder: Annotated[str, typer.Option(help="Embedder of the served Memory.")] = "hashing",
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQL on this (empty) database instead of SQLite.")
    ] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long even if short of --requests.")] = None,
    results_dir: Annotated[
        Path | None, typer.Option("--results-dir", help="Where the result file goes (default benchmarks/results/).")
    ] = None,
) -> None:
    """Fuzz the REST API from its OpenAPI schema: counts by status, 5xx (must be 0), 4xx without the
    error body (must be 0), rejected writes that changed stored data (must be 0). Exit code 1 on any."""
    from memsvc.benchmarks.fuzz import run_fuzz
    from memsvc.benchmarks.results import run_start, write_result
    from memsvc.config import Settings

    started = run_start()
    with tempfile.TemporaryDirectory(prefix="memsvc-fuzz-") as tmp:
        kw: dict[str, object] = {"data_dir": Path(tmp), "embedder": {"backend": embedder}}
        if database_url:
            kw.update(database_url=database_url, profile="service")
        settings = Settings(**kw)  # type: ignore[arg-type]
        result = run_fuzz(requests, seed=seed, settings=settings, max_seconds=max_seconds,
                          progress=lambda m: typer.echo(m, err=True))
    config = {"requests": requests, "seed": seed, "embedder": embedder, "database": "postgresql" if database_url
              else "sqlite", "max_seconds": max_seconds}
    path = write_result("fuzz", result, settings, config, results_dir, started)
    typer.echo(json.dumps(result, indent=2))
    typer.echo(f"wrote {path}", err=True)
    if not result["ok"]:
        typer.echo("fuzz found failures (see server_error_samples, bad_body_samples, changed_samples)", err=True)
        sys.exit(1)
