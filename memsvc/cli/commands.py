"""Core commands: migrate (demo, import and bench register from their own modules)."""

from __future__ import annotations

from pathlib import Path

import typer

from memsvc.cli import app
from memsvc.config import Settings


@app.command()
def migrate(
    data_dir: Path = typer.Option(None, help="Embedded data directory (default ~/.memsvc)."),
    database_url: str = typer.Option(None, help="SQLAlchemy URL (service profile)."),
    revision: str = typer.Option("head", help="Target revision."),
    down: bool = typer.Option(False, help="Downgrade to --revision instead of upgrading."),
) -> None:
    """Run the SQL schema migrations (Alembic)."""
    from memsvc.stores.sql import migrate as run

    kw = {k: v for k, v in (("data_dir", data_dir), ("database_url", database_url)) if v is not None}
    settings = Settings(**kw)
    if settings.profile == "embedded":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    run(settings.sql_url, revision, down=down)
    typer.echo(f"migrated {settings.sql_url} {'down' if down else 'up'} to {revision}")
