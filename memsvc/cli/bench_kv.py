"""``memsvc bench kv``: KV-cache compression figures (accuracy, KV bytes, prefill/decode time, reuse TTFT)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from memsvc.cli import bench_app


@bench_app.command("kv")
def bench_kv(
    model: str = typer.Option(
        None, "--model", help="HF causal LM name/path (default: the toy recall model)."
    ),
    cache_dir: Path = typer.Option(Path("~/.cache/memsvc/bench-kv"), help="Where the toy model is cached."),
    config: Path = typer.Option(None, exists=True, help="YAML config (default benchmarks/configs/kv.yaml)."),
    samples: int = typer.Option(None, help="Questions per configuration."),
    context: int = typer.Option(None, help="Context tokens."),
    ratios: str = typer.Option(None, help="Comma-separated compression ratios, e.g. 0.5,0.75,0.875."),
    presses: str = typer.Option(None, help="Comma-separated press names from the config (default: all)."),
    query_agnostic: bool = typer.Option(False, help="Leave the question out of the compressed context."),
    reuse_context: int = typer.Option(None, help="Context tokens for the episode-reuse TTFT."),
    threads: int = typer.Option(2, help="torch CPU threads (0: torch default)."),
    device: str = typer.Option("auto", help="Device for --model runs."),
    results_dir: Path = typer.Option(Path("benchmarks/results"), help="Where the results file goes."),
) -> None:
    """Recall accuracy, KV bytes, prefill and decode time per press and ratio; episode KV reuse TTFT."""
    import torch

    from memsvc.benchmarks.kv import load_config, run, write_results

    if threads:
        torch.set_num_threads(threads)
    overrides: dict[str, Any] = {
        "samples": samples,
        "context_tokens": context,
        "ratios": [float(r) for r in ratios.split(",")] if ratios else None,
        "reuse_context_tokens": reuse_context,
        "query_aware": False if query_agnostic else None,
        "device": device,
    }
    if presses:
        known = load_config(config)["presses"]
        overrides["presses"] = {n: known[n] for n in presses.split(",")}
    t0 = time.perf_counter()
    report, extras, cfg = run(model, cache_dir, config, **overrides)
    path = write_results(report, extras, cfg, results_dir, elapsed_s=round(time.perf_counter() - t0, 1))
    typer.echo(json.dumps(report, indent=2))
    typer.echo(f"results: {path}", err=True)
