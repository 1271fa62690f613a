"""Helpers for the API tests: a hashing-embedder Memory (no model load), the app over it with httpx's
ASGI transport, and a real uvicorn server on a random loopback port."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from memsvc import Memory, Settings
from memsvc.api import ApiConfig, create_app
from memsvc.stores.sql_keys import APIKeyStore


def hashing_settings(path: Path) -> Settings:
    return Settings(data_dir=path, embedder={"backend": "hashing"})


@dataclass
class Api:
    """An app under test: its keys store and the secrets of two tenants and an admin."""

    app: object
    keys: APIKeyStore
    acme: str
    globex: str
    admin: str

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://memsvc.test",
                                 headers=headers)


def make_api(memory: Memory, config: ApiConfig | None = None, auth_cache_s: float = 2.0) -> Api:
    app = create_app(memory=memory, config=config, auth_cache_s=auth_cache_s)
    keys: APIKeyStore = app.state.api.keys
    return Api(app, keys, keys.create("acme")[1], keys.create("globex")[1], keys.create(None, admin=True)[1])


class ThreadServer:
    def __init__(self, app: object) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class Live:
    url: str
    api: Api

