"""``memsvc bench locomo|longmemeval|latency``: the result as JSON on stdout, a copy with its metadata
(commit, machine, full settings, date) in ``benchmarks/results/``. Progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from memsvc.cli import bench_app
from memsvc.config import Settings

__all__ = ["bench_latency", "bench_locomo", "bench_longmemeval", "parse_budgets"]

ResultsDir = Annotated[
    Path | None,
    typer.Option("--results-dir", help="Where the result file goes (default benchmarks/results/)."),
]


def parse_budgets(text: str) -> list[int]:
    """``"500,1000"`` -> ``[500, 1000]`` (positive integers, order kept, duplicates dropped)."""
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"budgets must be comma-separated integers, got {text!r}") from exc
    if not out or any(b < 1 for b in out):
        raise typer.BadParameter("budgets must be positive integers")
    return list(dict.fromkeys(out))


def _log(msg: str) -> None:
    typer.echo(msg, err=True)


def _start() -> dict[str, Any]:
    from memsvc.benchmarks.results import run_start

    return run_start()


def _finish(
    bench: str,
    result: dict[str, Any],
    settings: Settings,
    config: dict[str, Any],
    results_dir: Path | None,
    started: dict[str, Any],
) -> None:
    from memsvc.benchmarks.results import write_result

    path = write_result(bench, result, settings, config, results_dir, started)
    typer.echo(json.dumps(result, indent=2))
    _log(f"wrote {path}")


@bench_app.command("locomo")
def bench_locomo(
    data: Annotated[Path, typer.Option("--data", exists=True, dir_okay=False, help="LoCoMo JSON file.")],
    budgets: Annotated[str, typer.Option(help="Comma-separated token budgets.")] = "500,1000,2000,4000",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N conversations.")] = None,
    results_dir: ResultsDir = None,
    segmenter: Annotated[
        str | None, typer.Option(help="Segmenter backend (settings.segmenter.backend), e.g. boundary, tiling, turn.")
    ] = None,
) -> None:
    """LoCoMo evidence recall (categories 1-4) at token budgets, tokens returned, add/search latency."""
    from memsvc.benchmarks.locomo import run_locomo

    started = _start()
    bs = parse_budgets(budgets)
    settings = Settings()
    if segmenter is not None:
        settings.segmenter.backend = segmenter
    result = run_locomo(data, bs, settings, limit, progress=_log)
    _finish(
        "locomo", result, settings, {"data": str(data), "budgets": bs, "limit": limit}, results_dir, started
    )


@bench_app.command("longmemeval")
def bench_longmemeval(
    data: Annotated[
        Path, typer.Option("--data", exists=True, dir_okay=False, help="LongMemEval JSON(.gz) file.")
    ],
    budgets: Annotated[str, typer.Option(help="Comma-separated token budgets.")] = "1000,2000,4000",
    step: Annotated[int, typer.Option(min=1, help="Every S-th question (the dev figures use 4).")] = 1,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N questions (after --step).")
    ] = None,
    results_dir: ResultsDir = None,
) -> None:
    """LongMemEval has_answer turn recall and all-answer-sessions recall at token budgets."""
    from memsvc.benchmarks.longmemeval import run_longmemeval

    started = _start()
    bs = parse_budgets(budgets)
    settings = Settings()
    result = run_longmemeval(data, bs, settings, step, limit, progress=_log)
    _finish(
        "longmemeval",
        result,
        settings,
        {"data": str(data), "budgets": bs, "step": step, "limit": limit},
        results_dir,
        started,
    )


@bench_app.command("latency")
def bench_latency(
    n: Annotated[int, typer.Option("--n", min=1, help="Memories (turns) stored before timing.")] = 100_000,
    users: Annotated[int, typer.Option(min=1, help="Users the turns are spread over.")] = 10,
    batch: Annotated[int, typer.Option(min=1, help="Events per bulk add_events call.")] = 2_000,
    samples: Annotated[
        int, typer.Option(min=1, help="Timed single adds, and timed searches per kind.")
    ] = 200,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the store here (default: a temporary folder).")
    ] = None,
    reuse: Annotated[
        bool, typer.Option(help="--data-dir already holds the store an earlier run loaded: time only.")
    ] = False,
    results_dir: ResultsDir = None,
) -> None:
    """Single-turn add and search latency (p50/p95, query embedding included) at N stored turns."""
    from tqdm import tqdm

    from memsvc.benchmarks.latency import run_latency

    started = _start()
    settings = Settings()
    with tqdm(total=n, unit="turn", desc="bulk load", file=sys.stderr, dynamic_ncols=True) as bar:
        result = run_latency(n, settings, users, batch, samples, data_dir=data_dir, progress=bar.update,
                             reuse=reuse)
    config = {"n": n, "users": users, "batch": batch, "samples": samples, "reuse": reuse}
    _finish("latency", result, settings, config, results_dir, started)
