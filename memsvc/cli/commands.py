"""Core commands: migrate (demo, import and bench register from their own modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from memsvc.cli import app
from memsvc.config import Settings


@app.command()
def migrate(
    data_dir: Annotated[Path | None, typer.Option(help="Embedded data directory (default ~/.memsvc).")] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (service profile).")] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option(help="Downgrade to --revision instead of upgrading.")] = False,
) -> None:
    """Run the SQL schema migrations (Alembic)."""
    from memsvc.stores.sql import migrate as run

    kw: dict[str, Any] = {k: v for k, v in (("data_dir", data_dir), ("database_url", database_url)) if v is not None}
    settings = Settings(**kw)
    if settings.profile == "embedded":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    run(settings.sql_url, revision, down=down)
    typer.echo(f"migrated {settings.sql_url} {'down' if down else 'up'} to {revision}")
