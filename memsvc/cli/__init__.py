"""The ``memsvc`` command line (Typer). Sub-commands live in sibling modules and register on import:

    memsvc demo | migrate | import ... | bench <name> ...
"""

from __future__ import annotations

import typer

app = typer.Typer(help="memsvc: long-term memory for conversational and video assistants.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: results as JSON on stdout and in benchmarks/results/.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def main() -> None:
    """Console-script entry point."""
    from memsvc.cli import commands  # noqa: F401  (registers commands)
    from memsvc.cli import worker  # noqa: F401  (registers worker/beat)

    app()


__all__ = ["app", "bench_app", "main"]
