"""No API key secret ever reaches a log line or the database: every logger (memsvc, uvicorn access and
error logs, httpx) at DEBUG is captured while keys are used, forged, revoked, created and while a
request fails with a 500, and then searched for the secrets."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_support import make_api
from sqlalchemy import MetaData, select

from memsvc import Memory
from memsvc.client import MemsvcClient
from memsvc.service import MemoryService

LOGGERS = ["", "memsvc", "memsvc.api", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"]


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


@pytest.fixture
def served(memory: Memory) -> Iterator[tuple[str, Any, Capture]]:
    import uvicorn

    api = make_api(memory, auth_cache_s=0.0)
    server = uvicorn.Server(uvicorn.Config(api.app, host="127.0.0.1", port=0, log_level="debug", access_log=True))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.02)
    cap = Capture()
    saved = []
    for name in LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.level))
        lg.addHandler(cap)
        lg.setLevel(logging.DEBUG)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", api, cap
    finally:
        for lg, level in saved:
            lg.removeHandler(cap)
            lg.setLevel(level)
        server.should_exit = True
        thread.join(timeout=30)


def test_no_secret_in_logs_or_database(served: tuple[str, Any, Capture], memory: Memory,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url, api, cap = served
    secrets = [api.acme, api.globex, api.admin]
    forged = api.acme[:-6] + "AAAAAA"
    with MemsvcClient(url, api.acme) as client:
        client.add("I walk the dog at six", user_id="ann")
        assert client.search("dog", user_id="ann")
    with httpx.Client(base_url=url) as c:
        for key in (forged, api.globex + "x", "not-a-key"):
            r = c.post("/v1/search", json={"query": "dog", "user_id": "ann"}, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 401 and key not in r.text
        assert c.post("/v1/search", json={"query": "dog", "user_id": "ann"}).status_code == 401
        admin = {"Authorization": f"Bearer {api.admin}"}
        created = c.post("/v1/admin/keys", json={"tenant": "initech"}, headers=admin).json()
        secrets.append(created["key"])
        gid = api.keys.verify(api.globex).id
        assert c.delete(f"/v1/admin/keys/{gid}", headers=admin).status_code == 200
        r = c.get("/v1/stats", params={"user_id": "ann"}, headers={"Authorization": f"Bearer {api.globex}"})
        assert r.status_code == 401
        assert c.get("/v1/admin/keys", headers=admin).status_code == 200

        def boom(self: MemoryService, *a: Any, **k: Any) -> Any:
            raise RuntimeError("search backend exploded")

        monkeypatch.setattr(MemoryService, "search", boom)
        r = c.post("/v1/search", json={"query": "dog", "user_id": "ann"}, headers={"Authorization": f"Bearer {api.acme}"})
        assert r.status_code == 500 and "exploded" not in r.text
    logs = "\n".join(cap.lines)
    # the capture really saw the traffic: access lines, auth failures, the logged 500
    assert "POST /v1/search" in logs and "401" in logs and "search backend exploded" in logs
    for s in [*secrets, forged]:
        assert s not in logs
        assert s.rsplit("_", 1)[-1] not in logs  # not even the random part
    # keys are stored hashed: no secret in any column of any table
    engine = memory.service.sql.engine
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        dump = "\n".join(repr(tuple(row)) for t in meta.sorted_tables for row in conn.execute(select(t)))
    assert "initech" in dump
    for s in secrets:
        assert s not in dump and s.rsplit("_", 1)[-1] not in dump
