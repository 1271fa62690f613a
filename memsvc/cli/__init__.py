"""The ``memsvc`` command line (Typer). Sub-commands live in sibling modules and register on import:

    memsvc demo | migrate | import locomo|longmemeval ... | bench locomo|longmemeval|latency|fuzz|rest|consolidation ...
"""

from __future__ import annotations

import typer

app = typer.Typer(help="memsvc: long-term memory for conversational and video assistants.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: results as JSON on stdout and in benchmarks/results/.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def main() -> None:
    """Console-script entry point."""
    app()


# Sub-commands register on ``app`` when their module is imported; they import nothing heavy at import
# time (torch, models and stores load inside the commands).
from memsvc.cli import (  # noqa: E402,F401
    bench,
    bench_compression,
    bench_consolidation,
    bench_crash,
    bench_fuzz,
    bench_kv,
    bench_segmentation,
    bench_video,
    commands,
    demo,
    doctor,
    imports,
    serve,
    worker,
)

__all__ = ["app", "bench_app", "main"]
