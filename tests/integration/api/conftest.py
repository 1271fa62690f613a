"""Fixtures for the REST API, client and LangChain tests (helpers live in ``api_support``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import Api, Live, ThreadServer, hashing_settings, make_api

from memsvc import Memory


@pytest.fixture
def anyio_backend() -> str:
    """Async tests here run on asyncio (anyio's pytest plugin: ``pytest.mark.anyio``)."""
    return "asyncio"


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[Memory]:
    m = Memory(hashing_settings(tmp_path / "srv"))
    yield m
    m.close()


@pytest.fixture
def api(memory: Memory) -> Api:
    return make_api(memory)


@pytest.fixture
def live(memory: Memory) -> Iterator[Live]:
    """A real uvicorn server (loopback, random port) in a thread of this process."""
    api = make_api(memory)
    with ThreadServer(api.app) as url:
        yield Live(url, api)
