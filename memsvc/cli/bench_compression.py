"""``memsvc bench compression``: prompt-compression figures on a file of texts."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from memsvc.cli import bench_app


@bench_app.command("compression")
def bench_compression(
    data: Path = typer.Option(..., exists=True, help="LoCoMo JSON, JSONL of {text}, or plain text."),
    compressor: str = typer.Option("selfinfo", help="Registry name: selfinfo, llmlingua2, none."),
    rate: float = typer.Option(0.7, help="Share of tokens to keep."),
    model: str = typer.Option(None, help="Model path for llmlingua2."),
    group: int = typer.Option(8, help="LoCoMo turns per unit."),
) -> None:
    """Tokens before/after, compression time per 1k tokens, protected-token survival."""
    from memsvc.benchmarks.compression import load_units, run_compression

    opts = {"model": model} if model else {}
    result = run_compression(load_units(data, group), compressor, rate, opts)
    typer.echo(json.dumps(result, indent=2))
