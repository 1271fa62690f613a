"""``memsvc bench video``: scene boundaries, time queries, memory per hour and ingest rate on synthetic
camera streams (see ``memsvc.benchmarks.video``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from memsvc.cli import bench_app


@bench_app.command("video")
def bench_video(
    hours: float = typer.Option(1.0, help="Stream length (1 frame/s)."),
    noise: str = typer.Option("0.3,0.8,1.2", help="Frame-noise levels for the boundary F1 sweep."),
    moderate: float = typer.Option(0.8, help="Noise level of the full ingest + time-query run."),
    seed: int = typer.Option(0),
    chunk: int = typer.Option(64, help="Frames per add_frames call."),
    embedder: str = typer.Option("minilm", help="Caption embedder: minilm (packaged) or hashing."),
    questions: int = typer.Option(80, help="Time-anchored questions per stream."),
    long_hours: float = typer.Option(0.0, help="Also ingest a stream this long to check bounded memory (e.g. 24)."),
    out: str = typer.Option("", help="Results folder (default benchmarks/results)."),
) -> None:
    """Video memory benchmark; JSON on stdout and in benchmarks/results/."""
    from memsvc.benchmarks.video import run, write_result

    config = {"hours": hours, "noise": noise, "moderate": moderate, "seed": seed, "chunk": chunk,
              "embedder": embedder, "questions": questions, "long_hours": long_hours}
    result = run(hours, tuple(float(x) for x in noise.split(",") if x.strip()), moderate, seed, chunk, embedder,
                 questions, long_hours)
    path = write_result(result, config, Path(out) if out else None)
    typer.echo(json.dumps(result, indent=2))
    typer.echo(f"written to {path}", err=True)
