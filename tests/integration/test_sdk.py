"""SDK end to end on the embedded profile (SQLite + qdrant-edge) and on PostgreSQL, real MiniLM."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from memsvc import AsyncMemory, Memory, Settings
from memsvc.exceptions import RecordNotFound
from memsvc.retrieval.packing import format_context
from memsvc.tokens import count_tokens

T0 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)

DOG = [
    {"role": "user", "content": "I adopted a puppy named Rex last week", "name": "Ann"},
    {"role": "assistant", "content": "Congratulations! What breed is Rex?"},
    {"role": "user", "content": "He is a golden retriever, very playful", "name": "Ann"},
]
JOB = [
    {"role": "user", "content": "I started a new job as a nurse at the city hospital", "name": "Ann"},
    {"role": "assistant", "content": "How are the night shifts going?"},
    {"role": "user", "content": "Night shifts are exhausting but the team is kind", "name": "Ann"},
]


@pytest.fixture(params=["sqlite", "postgres"])
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        settings = Settings(data_dir=tmp_path / "m", database_url=url, profile="service")
    else:
        settings = Settings(data_dir=tmp_path / "m")
    m = Memory(settings)
    yield m
    m.close()


def test_add_then_search_immediately(memory: Memory) -> None:
    ids = memory.add(DOG, user_id="ann", session_id="s1", timestamp=T0)
    assert len(ids) == 3 and len(set(ids)) == 3
    hits = memory.search("what breed is Ann's dog?", user_id="ann", limit=5)
    assert hits, "a memory must be searchable as soon as add returns"
    top = hits[0]
    assert "golden retriever" in top.text
    assert set(top.source_ids) & set(ids)
    assert top.start_time == T0 and top.user_id == "ann" and top.session_id == "s1"
    parts = {k: v for k, v in top.components.items() if not k.endswith("_raw")}
    assert "dense" in parts and top.score == pytest.approx(sum(parts.values()), abs=1e-4)


def test_budget_packing_matches_context(memory: Memory) -> None:
    memory.add(DOG, user_id="ann", session_id="s1", timestamp=T0)
    memory.add(JOB, user_id="ann", session_id="s2", timestamp=T0 + timedelta(days=3))
    for budget in (5, 20, 40, 80, 1000):
        hits = memory.search("Ann's job", user_id="ann", budget_tokens=budget)
        ctx = memory.context("Ann's job", user_id="ann", budget_tokens=budget)
        assert ctx == format_context(hits)
        assert count_tokens(ctx) <= budget
    full = memory.search("Ann's job", user_id="ann", budget_tokens=1000)
    covered = {s for h in full for s in h.source_ids}
    assert len(covered) == 6  # everything fits in 1000 tokens, each turn once
    assert sum(len(h.source_ids) for h in full) == 6


def test_idempotent_client_ids(memory: Memory) -> None:
    msgs = [dict(m, client_id=f"c{i}") for i, m in enumerate(DOG)]
    first = memory.add(msgs, user_id="ann", session_id="s1", timestamp=T0)
    again = memory.add(msgs, user_id="ann", session_id="s1", timestamp=T0)
    assert first == again
    assert memory.stats("ann")["events"] == 3
    dup_in_batch = memory.add(
        [{"role": "user", "content": "x y z", "client_id": "same"}, {"role": "user", "content": "x", "client_id": "same"}],
        user_id="ann", timestamp=T0,
    )
    assert dup_in_batch[0] == dup_in_batch[1]


def test_get_history_and_provenance(memory: Memory) -> None:
    ids = memory.add(DOG, user_id="ann", session_id="s1", timestamp=T0)
    rec = memory.get(ids[0])
    # the relative date is resolved against the turn's time and kept next to the words
    assert rec.kind == "turn" and rec.text.startswith("Ann: I adopted a puppy named Rex last week")
    assert rec.producer["embedder"] == "all-MiniLM-L6-v2"
    hist = memory.history(user_id="ann", session_id="s1")
    assert [h.id for h in hist] == ids
    assert [h.id for h in memory.history(user_id="ann", limit=2, offset=1)] == ids[1:]
    with pytest.raises(RecordNotFound):
        memory.get("00000000-0000-0000-0000-000000000000")


def test_delete_cascades_and_rebuilds_episode(memory: Memory) -> None:
    ids = memory.add(DOG, user_id="ann", session_id="s1", timestamp=T0)
    before = memory.stats("ann")
    memory.delete(ids[2])
    after = memory.stats("ann")
    assert after["events"] == before["events"] - 1
    for h in memory.search("golden retriever playful", user_id="ann", budget_tokens=500):
        assert ids[2] not in h.source_ids
        assert "golden retriever" not in h.text
    with pytest.raises(RecordNotFound):
        memory.get(ids[2])
    with pytest.raises(RecordNotFound):
        memory.delete(ids[2])


def test_delete_user_removes_rows_and_vectors(memory: Memory) -> None:
    memory.add(DOG, user_id="ann", session_id="s1", timestamp=T0)
    memory.add(JOB, user_id="bob", session_id="s1", timestamp=T0)
    memory.delete_user("ann")
    st = memory.stats("ann")
    assert st["events"] == 0 and st["vectors"] == 0 and st.get("turn", 0) == 0
    assert memory.search("dog", user_id="ann") == []
    assert memory.stats("bob")["events"] == 3 and memory.search("nurse", user_id="bob")


def test_users_and_tenants_are_isolated(memory: Memory) -> None:
    memory.add(DOG, user_id="ann", timestamp=T0)
    other = memory.for_tenant("acme")
    other.add(JOB, user_id="ann", timestamp=T0)  # same user id, other tenant
    memory.add([{"role": "user", "content": "My secret: the safe code is 4711"}], user_id="eve", timestamp=T0)
    for q in ("safe code", "dog", "nurse"):
        assert all("4711" not in h.text for h in memory.search(q, user_id="ann", budget_tokens=2000))
    assert all("nurse" not in h.text for h in memory.search("nurse job", user_id="ann", budget_tokens=2000))
    assert all("puppy" not in h.text for h in other.search("puppy dog", user_id="ann", budget_tokens=2000))
    ann_ids = [r.id for r in memory.history(user_id="ann")]
    with pytest.raises(RecordNotFound):
        other.get(ann_ids[0])
    with pytest.raises(RecordNotFound):
        other.delete(ann_ids[0])
    assert memory.get(ann_ids[0]).user_id == "ann"


def test_time_range_filter(memory: Memory) -> None:
    memory.add(DOG, user_id="ann", session_id="s1", timestamp=T0)
    memory.add(JOB, user_id="ann", session_id="s2", timestamp=T0 + timedelta(days=30))
    hits = memory.search("what happened", user_id="ann", time_range=(T0 + timedelta(days=10), None), limit=10)
    assert hits and all(h.start_time >= T0 + timedelta(days=10) for h in hits)


def test_reopen_and_repair_after_crash_between_writes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "m")
    m = Memory(settings)
    ids = m.add(DOG, user_id="ann", session_id="s1", timestamp=T0)
    # simulate a crash after the SQL commit but before the vector upsert: vector gone, state pending
    m.service.vectors.delete([ids[2]])
    m.service.sql.set_index_state([ids[2]], "pending")
    m.close()
    m = Memory(settings)  # opening repairs pending units
    try:
        assert m.stats("ann")["vectors"] == m.stats("ann")["turn"] + m.stats("ann")["episode"]
        assert any(ids[2] in h.source_ids for h in m.search("golden retriever", user_id="ann", levels=["turn"]))
        report = m.consolidate()
        assert report["orphans_removed"] == 0
    finally:
        m.close()


def test_reconcile_removes_orphans_and_restores_missing(tmp_path: Path) -> None:
    m = Memory(path=tmp_path / "m")
    try:
        ids = m.add(DOG, user_id="ann", session_id="s1", timestamp=T0)
        m.service.vectors.delete([ids[0]])  # lost vector, state still "indexed"
        from memsvc.stores import VectorPoint

        orphan = VectorPoint(id="11111111-1111-1111-1111-111111111111", vector=np.ones(384, np.float32),
                             tenant="default", user="ann", level="turn", start=0.0, end=0.0)
        m.service.vectors.upsert([orphan])
        report = m.consolidate()
        assert report["orphans_removed"] == 1 and report["reindexed"] >= 1
        assert orphan.id not in m.service.vectors.ids()
        assert ids[0] in m.service.vectors.ids()
    finally:
        m.close()


def test_add_frames_captions_and_embeddings(memory: Memory) -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(2, 32))
    emb = np.concatenate([centers[0] + 0.05 * rng.normal(size=(5, 32)), centers[1] + 0.05 * rng.normal(size=(5, 32))])
    ts = [T0 + timedelta(seconds=i) for i in range(10)]
    caps = ["a person opens the front door"] * 5 + ["a cat sleeps on the sofa"] * 5
    ids = memory.add_frames(stream_id="cam1", user_id="ann", timestamps=ts, embeddings=emb, captions=caps)
    assert len(ids) == 10
    hits = memory.search("cat on the couch", user_id="ann", limit=3)
    assert hits and "cat" in hits[0].text and hits[0].stream_id == "cam1"


def test_async_memory(tmp_path: Path) -> None:
    async def run() -> None:
        async with AsyncMemory(path=tmp_path / "a") as m:
            ids = await asyncio.gather(
                m.add(DOG, user_id="ann", session_id="s1", timestamp=T0),
                m.add(JOB, user_id="bob", session_id="s1", timestamp=T0),
            )
            assert all(len(i) == 3 for i in ids)
            hits = await m.search("dog breed", user_id="ann", limit=3)
            assert hits and "retriever" in " ".join(h.text for h in hits)
            assert await m.context("dog", user_id="bob", budget_tokens=200)

    asyncio.run(run())
