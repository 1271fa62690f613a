"""``memsvc serve`` (the REST API under uvicorn), ``memsvc keys create|revoke|list`` and ``memsvc bench rest``.

    memsvc keys create --tenant acme      # prints the new key as the last line
    memsvc keys create --admin            # a key for /v1/admin (key management only)
    memsvc serve --port 8000              # embedded store under ~/.memsvc (or --data-dir)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from memsvc.cli import app, bench_app
from memsvc.config import Settings

keys_app = typer.Typer(help="API keys for the REST service (stored hashed in the SQL database).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")

_DATA_DIR = typer.Option(None, "--data-dir", help="Embedded data directory (default ~/.memsvc or MEMSVC_DATA_DIR).")
_OUT = typer.Option(None, help="Also write the JSON here (default benchmarks/results/rest_load.json).")
_DB_URL = typer.Option(None, "--database-url", help="SQLAlchemy URL (service profile).")


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    kw: dict[str, Any] = {}
    if data_dir is not None:
        kw["data_dir"] = data_dir
    if database_url is not None:
        kw.update(database_url=database_url, profile="service")
    return Settings(**kw)


def _key_store(settings: Settings) -> Any:
    from memsvc.stores.sql import SQLRecordStore
    from memsvc.stores.sql_keys import APIKeyStore

    if settings.profile == "embedded":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    sql = SQLRecordStore(settings.sql_url, auto_migrate=settings.auto_migrate)
    return sql, APIKeyStore(sql.engine)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 exposes it to the network)."),
    port: int = typer.Option(8000, help="TCP port (0 picks a free one)."),
    data_dir: Path = _DATA_DIR,
    database_url: str = _DB_URL,
    workers: int = typer.Option(None, help="Threads for blocking calls (default MEMSVC_API__WORKERS or 8)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    access_log: bool = typer.Option(False, help="Log every request line."),
) -> None:
    """Run the REST API: one process, one Memory, blocking work on a bounded thread pool."""
    import uvicorn

    from memsvc.api import ApiConfig, create_app

    settings = _settings(data_dir, database_url)
    config = ApiConfig(**({"workers": workers} if workers else {}))
    api = create_app(settings, config=config, warmup=True)
    where = settings.sql_url if settings.profile == "service" else str(settings.data_dir)
    typer.echo(f"memsvc {settings.profile} store at {where}; serving on http://{host}:{port}", err=True)
    uvicorn.run(api, host=host, port=port, log_level=log_level, access_log=access_log, lifespan="on")


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(None, help="Tenant the key acts for."),
    admin: bool = typer.Option(False, "--admin", help="An admin key (manages keys, reads no data)."),
    name: str = typer.Option("", help="A label to recognise the key by."),
    data_dir: Path = _DATA_DIR,
    database_url: str = _DB_URL,
) -> None:
    """Create a key; the secret is printed once, as the last line."""
    if (tenant is None) == (not admin):
        raise typer.BadParameter("give --tenant NAME or --admin (one of them)")
    sql, store = _key_store(_settings(data_dir, database_url))
    try:
        rec, secret = store.create(None if admin else tenant, name=name, admin=admin)
    finally:
        sql.close()
    who = "admin" if admin else f"tenant {tenant!r}"
    typer.echo(f"created key {rec.id} for {who}; it is shown only once:")
    typer.echo(secret)


@keys_app.command("revoke")
def keys_revoke(
    key: str = typer.Argument(..., help="The key id (from `keys list`) or the key itself."),
    data_dir: Path = _DATA_DIR,
    database_url: str = _DB_URL,
) -> None:
    """Revoke a key (running servers stop accepting it within their short auth cache time)."""
    from memsvc.exceptions import RecordNotFound
    from memsvc.stores.sql_keys import KEY_PREFIX

    key_id = key[len(KEY_PREFIX):].split("_", 1)[0] if key.startswith(KEY_PREFIX) else key
    sql, store = _key_store(_settings(data_dir, database_url))
    try:
        rec = store.revoke(key_id)
    except RecordNotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    finally:
        sql.close()
    typer.echo(f"revoked key {rec.id} ({'admin' if rec.is_admin else 'tenant ' + repr(rec.tenant)})")


@keys_app.command("list")
def keys_list(
    tenant: str = typer.Option(None, help="Only this tenant's keys."),
    all_keys: bool = typer.Option(False, "--all", help="Include revoked keys."),
    data_dir: Path = _DATA_DIR,
    database_url: str = _DB_URL,
) -> None:
    """List keys as JSON lines (never the secrets)."""
    sql, store = _key_store(_settings(data_dir, database_url))
    try:
        for k in store.list(tenant, include_revoked=all_keys):
            typer.echo(json.dumps(k.to_dict()))
    finally:
        sql.close()


@bench_app.command("rest")
def bench_rest(
    clients: int = typer.Option(8, help="Concurrent async HTTP clients."),
    adds: int = typer.Option(2000, help="Total add requests (one message each), split across clients."),
    searches: int = typer.Option(2000, help="Total search requests, after the adds."),
    embedder: str = typer.Option("sentence-transformers", help="Embedder of the server it starts."),
    url: str = typer.Option(None, help="Measure a running server instead of starting one (needs --key)."),
    key: str = typer.Option(None, help="Tenant API key for --url."),
    database_url: str = typer.Option(None, "--database-url", help="Started server keeps SQL in this (empty) database."),
    duration: float = typer.Option(None, "--duration", help="Mixed add/search/context for this many seconds "
                                   "(instead of the add then search phases)."),
    mix: str = typer.Option("add=0.3,search=0.5,context=0.2", help="Operation weights of --duration."),
    preload: int = typer.Option(200, help="Messages per client stored (bulk, unmeasured) before --duration."),
    rss_every: float = typer.Option(5.0, "--rss-every", help="Seconds between server RSS samples (--duration)."),
    out: Path = _OUT,
) -> None:
    """REST add throughput and search latency with N concurrent clients on loopback (JSON on stdout);
    with --duration, a mixed add/search/context load with per-operation percentiles and server RSS."""
    from memsvc.benchmarks.rest_load import parse_mix, run

    try:
        weights = parse_mix(mix)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    result = run(clients=clients, adds=adds, searches=searches, embedder=embedder, url=url, key=key,
                 database_url=database_url, duration=duration, mix=weights, preload=preload, rss_every_s=rss_every)
    text = json.dumps(result, indent=2)
    typer.echo(text)
    name = "rest_load.json" if duration is None else \
        f"rest_mixed_{'service' if database_url else 'external' if url else 'embedded'}.json"
    target = out or Path("benchmarks/results") / name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n")
    except OSError as exc:  # read-only install: stdout is the result
        typer.echo(f"could not write {target}: {exc}", err=True)
