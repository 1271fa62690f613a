"""``AsyncMemory`` under concurrent use from one event loop: bounded threads, correct results, tenant
views sharing the pool, and a close that waits for running calls."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from api_support import hashing_settings

from memsvc import AsyncMemory, Memory
from memsvc.exceptions import InvalidInputError, StoreError

T0 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def test_many_concurrent_calls_on_a_bounded_pool(tmp_path: Path) -> None:
    peak = {"n": 0}

    async def run() -> None:
        m = AsyncMemory(hashing_settings(tmp_path / "a"), max_workers=3)

        async def writer(i: int) -> list[str]:
            ids = await m.add([{"role": "user", "content": f"user {i % 4} fact {i}: likes colour {i}"}],
                              user_id=f"u{i % 4}", session_id="s", timestamp=T0)
            hits = await m.search(f"fact {i} colour {i}", user_id=f"u{i % 4}", limit=3)
            assert hits and all(h.user_id == f"u{i % 4}" for h in hits)
            workers = [t for t in threading.enumerate() if t.name.startswith("memsvc-async")]
            peak["n"] = max(peak["n"], len(workers))
            return ids

        results = await asyncio.gather(*(writer(i) for i in range(40)))
        assert len({r[0] for r in results}) == 40
        counts = await asyncio.gather(*(m.stats(f"u{u}") for u in range(4)))
        assert [c["events"] for c in counts] == [10, 10, 10, 10]
        history = await m.history("u1", session_id="s")
        assert [r.id for r in history] == [results[i][0] for i in range(1, 40, 4)]  # arrival order per user
        await m.close()

    asyncio.run(run())
    assert 1 <= peak["n"] <= 3


def test_tenant_views_share_the_pool_and_stay_apart(tmp_path: Path) -> None:
    async def run() -> None:
        async with AsyncMemory(hashing_settings(tmp_path / "b"), max_workers=2) as m:
            other = m.for_tenant("globex")
            assert other._pool is m._pool
            await asyncio.gather(m.add("my dog is Rex", user_id="ann", timestamp=T0),
                                 other.add("my cat is Tom", user_id="ann", timestamp=T0))
            assert [r.text for r in await m.history("ann")] == ["my dog is Rex"]
            assert [r.text for r in await other.history("ann")] == ["my cat is Tom"]
        with pytest.raises(StoreError):
            await other.search("cat", user_id="ann")  # closing the root closes its views

    asyncio.run(run())


def test_close_waits_for_running_calls_then_refuses(tmp_path: Path) -> None:
    async def run() -> None:
        m = AsyncMemory(hashing_settings(tmp_path / "c"), max_workers=2)
        pending = [asyncio.ensure_future(m.add(f"note {i}", user_id="ann", timestamp=T0)) for i in range(10)]
        await asyncio.sleep(0)  # submitted to the pool
        await m.close()
        assert [len(i) for i in await asyncio.gather(*pending)] == [1] * 10
        with pytest.raises(StoreError):
            await m.add("late", user_id="ann")
        await m.close()  # idempotent

    asyncio.run(run())
    with Memory(hashing_settings(tmp_path / "c")) as again:
        assert again.stats("ann")["events"] == 10
    with pytest.raises(InvalidInputError):
        AsyncMemory(hashing_settings(tmp_path / "d"), max_workers=0)


def test_from_memory_wraps_an_existing_memory(tmp_path: Path) -> None:
    with Memory(hashing_settings(tmp_path / "e")) as sync:
        sync.add("hello there", user_id="ann", timestamp=T0)

        async def run() -> None:
            am = AsyncMemory.from_memory(sync, max_workers=2)
            assert am.sync is sync
            assert (await am.search("hello", user_id="ann"))[0].text.endswith("hello there")
            am._pool.shutdown()

        asyncio.run(run())
