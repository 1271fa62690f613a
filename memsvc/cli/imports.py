"""``memsvc import locomo|longmemeval PATH --user U``: load a benchmark data set into a store.

Ingest is the one the benchmarks use (``memsvc.benchmarks.datasets``): LoCoMo turns with their image
captions, one ``add`` per session at the session date, the speaker as name; LongMemEval haystack
sessions at their dates.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from memsvc.cli import app
from memsvc.config import Settings

__all__ = ["import_app"]

import_app = typer.Typer(
    help="Import a benchmark data set into a store (progress bar on stderr).", no_args_is_help=True
)
app.add_typer(import_app, name="import")

User = Annotated[str, typer.Option("--user", "-u", help="User id that owns the imported memories.")]
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Embedded data directory (default ~/.memsvc or MEMSVC_DATA_DIR)."),
]


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def _bar(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="turn", desc=desc, file=sys.stderr, dynamic_ncols=True)


def _report(m: Any, user: str, what: str, n_turns: int) -> None:
    stats = m.stats(user)
    typer.echo(f"imported {what}: {n_turns} turns for user {user!r} into {m.settings.data_dir}")
    typer.echo("stored: " + ", ".join(f"{k} {v}" for k, v in stats.items()))


@import_app.command("locomo")
def import_locomo(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="LoCoMo JSON file.")],
    user: User,
    data_dir: DataDir = None,
    conversation: Annotated[
        list[str] | None,
        typer.Option("--conversation", "-c", help="Only this sample_id (repeatable; default: all)."),
    ] = None,
) -> None:
    """Import LoCoMo conversations (session ids ``<sample_id>-s<N>``)."""
    from memsvc import Memory
    from memsvc.benchmarks.datasets import ingest_locomo, load_locomo

    convs = load_locomo(path)
    if conversation:
        missing = set(conversation) - {c.sample_id for c in convs}
        if missing:
            raise typer.BadParameter(f"unknown sample ids {sorted(missing)}", param_hint="--conversation")
        convs = [c for c in convs if c.sample_id in set(conversation)]
    total = sum(c.n_turns for c in convs)
    with Memory(_settings(data_dir)) as m, _bar(total, "locomo") as bar:
        for c in convs:
            ingest_locomo(m, c, user, progress=bar.update)
        bar.close()
        _report(m, user, f"{len(convs)} LoCoMo conversations", total)


@import_app.command("longmemeval")
def import_longmemeval(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="LongMemEval JSON (or .json.gz) file.")
    ],
    user: User,
    data_dir: DataDir = None,
    question: Annotated[
        list[str] | None,
        typer.Option("--question", "-q", help="Only this question_id's haystack (repeatable; default: all)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions' haystacks.")] = None,
) -> None:
    """Import LongMemEval haystacks (session ids ``<question_id>-s<N>``; each question's haystack)."""
    from memsvc import Memory
    from memsvc.benchmarks.datasets import ingest_longmemeval, iter_steps, load_longmemeval

    qs = load_longmemeval(path)
    if question:
        missing = set(question) - {q.question_id for q in qs}
        if missing:
            raise typer.BadParameter(f"unknown question ids {sorted(missing)}", param_hint="--question")
        qs = [q for q in qs if q.question_id in set(question)]
    qs = list(iter_steps(qs, 1, limit))
    total = sum(q.n_turns for q in qs)
    with Memory(_settings(data_dir)) as m, _bar(total, "longmemeval") as bar:
        for q in qs:
            ingest_longmemeval(m, q, user, progress=bar.update, session_prefix=f"{q.question_id}-s")
        bar.close()
        _report(m, user, f"{len(qs)} LongMemEval haystacks", total)
