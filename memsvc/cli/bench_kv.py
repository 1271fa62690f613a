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
        None,
        "--model",
        help="HF causal LM name/path (default: Settings gpu.model when set, else the toy recall model).",
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
    device: str = typer.Option(None, help="Device for --model runs (default: Settings gpu.device)."),
    dtype: str = typer.Option(None, help="dtype for --model runs (default: Settings gpu.dtype)."),
    toy: bool = typer.Option(False, "--toy", help="Run the toy model even when Settings name a model."),
    results_dir: Path = typer.Option(Path("benchmarks/results"), help="Where the results file goes."),
) -> None:
    """Recall accuracy, KV bytes, prefill and decode time per press and ratio; episode KV reuse TTFT.

    Reads the ``gpu`` section of Settings (``MEMSVC_GPU__*``): a local ``model`` is benchmarked unless
    ``--model``/``--toy`` say otherwise, with its ``device`` and ``dtype``."""
    import torch

    from memsvc.benchmarks.kv import load_config, run, write_results
    from memsvc.config import Settings

    gpu = Settings().gpu
    if model is None and not toy and gpu.model and not gpu.base_url:
        model = gpu.model

    if threads:
        torch.set_num_threads(threads)
    overrides: dict[str, Any] = {
        "samples": samples,
        "context_tokens": context,
        "ratios": [float(r) for r in ratios.split(",")] if ratios else None,
        "reuse_context_tokens": reuse_context,
        "query_aware": False if query_agnostic else None,
        "device": device or gpu.device,
        "dtype": dtype or gpu.dtype,
    }
    if presses:
        known = load_config(config)["presses"]
        overrides["presses"] = {n: known[n] for n in presses.split(",")}
    t0 = time.perf_counter()
    report, extras, cfg = run(model, cache_dir, config, **overrides)
    path = write_results(report, extras, cfg, results_dir, elapsed_s=round(time.perf_counter() - t0, 1))
    typer.echo(json.dumps(report, indent=2))
    reuse = extras.get("episode_reuse_detail") or {}
    if reuse.get("ttft_reuse_ms"):
        typer.echo(
            f"episode reuse at {reuse['context_tokens']} tokens on {report['device']}: time to first token "
            f"{reuse['ttft_reprefill_ms']} ms re-prefilled, {reuse['ttft_reuse_ms']} ms from the stored KV "
            f"({reuse['ttft_reprefill_ms'] / reuse['ttft_reuse_ms']:.1f}x)",
            err=True,
        )
    typer.echo(f"results: {path}", err=True)
