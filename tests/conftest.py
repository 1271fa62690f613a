"""Shared fixtures: clean environment, the real MiniLM embedder, PostgreSQL databases, stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PG_ADMIN_URL = os.environ.get("MEMSVC_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("MEMSVC_REQUIRE_SERVICES") == "1"


def service_missing(what: str, exc: BaseException) -> None:
    """Fail in CI (MEMSVC_REQUIRE_SERVICES=1), skip on a developer machine without the service."""
    msg = f"{what} is not reachable: {exc}"
    if REQUIRE_SERVICES:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see a developer's MEMSVC_* settings."""
    for k in list(os.environ):
        if k.startswith("MEMSVC_") and k not in ("MEMSVC_REQUIRE_SERVICES", "MEMSVC_TEST_PG", "MEMSVC_TEST_REDIS", "MEMSVC_TEST_AMQP"):
            monkeypatch.delenv(k, raising=False)


@pytest.fixture(scope="session")
def minilm():  # type: ignore[no-untyped-def]
    """The real packaged all-MiniLM-L6-v2 embedder, loaded once per test session."""
    from memsvc.embedders import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder()
    emb.embed(["warm up"])
    return emb


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the local server (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    name = f"memsvc_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any driver/connection error means "not reachable"
        service_missing("PostgreSQL", exc)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    """The local Redis (Celery broker and per-user locks in the worker tests)."""
    url = os.environ.get("MEMSVC_TEST_REDIS", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - any client/connection error means "not reachable"
        service_missing("Redis", exc)
    return url


@pytest.fixture
def amqp_url() -> str:
    """The local RabbitMQ (the worker tests' second broker)."""
    import socket

    url = os.environ.get("MEMSVC_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError as exc:
        service_missing("RabbitMQ", exc)
    return url


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "memsvc"
