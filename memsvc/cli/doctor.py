"""``memsvc doctor``: report SQL <-> vector drift, repair it, or rebuild the index for a new embedder."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from memsvc.cli import app
from memsvc.config import Settings


@app.command()
def doctor(
    data_dir: Path = typer.Option(None, help="Embedded data directory (default ~/.memsvc)."),
    database_url: str = typer.Option(None, help="SQLAlchemy URL (service profile)."),
    repair: bool = typer.Option(False, help="Index missing/pending units and remove orphan vectors."),
    reindex: bool = typer.Option(False, help="Rebuild the whole vector index with the configured embedder."),
) -> None:
    """Check that every live unit has its vector and no vector lacks its unit; optionally fix it."""
    from memsvc.consolidation import reconcile
    from memsvc.service import MemoryService

    kw = {k: v for k, v in (("data_dir", data_dir), ("database_url", database_url)) if v is not None}
    svc = MemoryService(Settings(**kw), reindex=reindex)
    try:
        in_sql, in_index = svc.sql.live_unit_ids(), svc.vectors.ids()
        report = {
            "units": len(in_sql),
            "vectors": len(in_index),
            "missing_vectors": len(in_sql - in_index),
            "orphan_vectors": len(in_index - in_sql),
            "pending": len(svc.sql.unit_ids_by_state(["pending", "stale"])),
            "embedder": svc.sql.meta(),
        }
        if svc.lexical is not None:  # the keyword index drifts the same way (reconcile repairs both)
            in_lexical = svc.lexical.ids()
            report["missing_lexical"] = len(in_sql - in_lexical)
            report["orphan_lexical"] = len(in_lexical - in_sql)
        if repair or reindex:
            report["repair"] = reconcile(svc)
        typer.echo(json.dumps(report, indent=2))
    finally:
        svc.close()
