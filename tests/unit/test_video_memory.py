"""Video memory through the SDK: chunked == one-shot (across restarts), bounded memory, time queries,
stream deletes cascading to both indexes, duplicates and late frames, images."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from memsvc import Memory, Settings
from memsvc.benchmarks.video_synth import SyntheticStream, VideoStreamConfig, generate
from memsvc.embedders import HashingEmbedder
from memsvc.exceptions import EmbeddingError, InvalidInputError
from memsvc.stores.sql_schema import EventRow, StreamStateRow, UnitLinkRow, UnitRow
from memsvc.video.frames import rep_ids
from memsvc.video.query import video_search


def _memory(path: Path, backend: str = "memory", **video: Any) -> Memory:
    return Memory(Settings(data_dir=path, vector={"backend": backend}, video=video), embedder=HashingEmbedder())


@pytest.fixture(scope="module")
def stream() -> SyntheticStream:
    return generate(VideoStreamConfig(duration_s=1500, noise=0.8, seed=7, gap_p=0.2), 24)


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[Memory]:
    m = _memory(tmp_path / "m")
    yield m
    m.close()


def _ingest(m: Memory, s: SyntheticStream, chunk: int = 64, stream_id: str = "cam1", user: str = "u1") -> list[str]:
    ids: list[str] = []
    for i in range(0, len(s.timestamps), chunk):
        ids += m.add_frames(stream_id, user, s.timestamps[i : i + chunk], s.embeddings[i : i + chunk],
                            s.captions[i : i + chunk])
    return ids


def _scenes(m: Memory, ids: list[str], stream_id: str = "cam1") -> list[tuple[Any, ...]]:
    """Scenes as comparable tuples, frames named by their position in the input."""
    svc = m.service
    pos = {e: k for k, e in enumerate(ids)}
    with svc.sql.session() as s:
        rows = list(s.scalars(select(UnitRow).where(UnitRow.stream_id == stream_id).order_by(UnitRow.start_ts)))
    srcs = svc.sql.sources([u.id for u in rows])
    store = svc.video.frames.store(svc.video._load(svc.scope("u1"), stream_id).dim or 0, create=False)
    out = []
    for u in rows:
        reps = store.fetch(rep_ids([u.id])) if store is not None else {}
        out.append((u.start_ts, u.end_ts, u.status, u.text, sorted(pos[e] for e in srcs.get(u.id, [])),
                    [pos[f] for f in u.meta["representative_frames"]],
                    [np.round(v, 5).tolist() for _, v in sorted(reps.items())]))
    return out


def test_chunked_online_ingest_equals_one_shot_across_restarts(tmp_path: Path, stream: SyntheticStream) -> None:
    one = _memory(tmp_path / "one", backend="qdrant-edge")
    ids_one = one.add_frames("cam1", "u1", stream.timestamps, stream.embeddings, stream.captions)
    chunked_path = tmp_path / "chunked"
    ids_chunked: list[str] = []
    rng = np.random.default_rng(1)
    i = 0
    while i < len(stream.timestamps):
        n = int(rng.integers(1, 200))
        m = _memory(chunked_path, backend="qdrant-edge")  # a new process each time: state comes from SQL
        ids_chunked += m.add_frames("cam1", "u1", stream.timestamps[i : i + n], stream.embeddings[i : i + n],
                                    stream.captions[i : i + n])
        m.close()
        i += n
    chunked = _memory(chunked_path, backend="qdrant-edge")
    assert _scenes(one, ids_one) == _scenes(chunked, ids_chunked)
    assert len(_scenes(one, ids_one)) >= 5
    assert one.end_stream("cam1", "u1") == chunked.end_stream("cam1", "u1") == 1
    closed = _scenes(one, ids_one)
    assert closed == _scenes(chunked, ids_chunked)
    assert all(sc[2] == "closed" for sc in closed)
    # every frame is in exactly one scene
    assert sorted(k for sc in closed for k in sc[4]) == list(range(len(stream.timestamps)))
    one.close()
    chunked.close()


def test_scene_boundaries_and_hit_metadata(mem: Memory, stream: SyntheticStream) -> None:
    ids = _ingest(mem, stream)
    mem.end_stream("cam1", "u1")
    scenes = _scenes(mem, ids)
    starts = [sc[4][0] for sc in scenes[1:]]
    hits = sum(any(abs(b - c) <= 2 for c in starts) for b in stream.boundaries)
    assert hits / len(stream.boundaries) >= 0.9 and len(starts) <= 1.15 * len(stream.boundaries)
    hit = mem.search("opening the front door", "u1", limit=1)[0]
    assert hit.stream_id == "cam1" and hit.level == "episode" and hit.start_time <= hit.end_time
    assert hit.metadata["representative_frames"] and set(hit.metadata["representative_frames"]) <= set(hit.source_ids)


def test_bounded_memory_on_a_long_stream(tmp_path: Path) -> None:
    s = generate(VideoStreamConfig(duration_s=3 * 3600, noise=0.8, seed=11, caption_every_s=30), 0)
    m = _memory(tmp_path / "long")
    svc = m.service
    sizes = []
    hour = 3600
    for i in range(0, len(s.timestamps), 500):
        m.add_frames("cam1", "u1", s.timestamps[i : i + 500], s.embeddings[i : i + 500], s.captions[i : i + 500])
        if (i + 500) % hour < 500:
            with svc.sql.session() as sess:
                sizes.append(len(json.dumps(sess.scalars(select(StreamStateRow.state)).one())))
    stats = m.stats("u1")
    assert stats["events"] == len(s.timestamps)
    assert stats["frame_vectors"] + stats["vectors"] <= len(s.timestamps) / 50
    assert max(sizes) < 400_000 and max(sizes) < 1.5 * min(sizes)  # state does not grow with the stream
    with svc.sql.session() as sess:
        kept = sess.scalar(select(EventRow.id).where(EventRow.embedding.is_not(None)).limit(10_000).with_only_columns(
            __import__("sqlalchemy").func.count()))
    assert kept < len(s.timestamps) / 20  # raw frame embeddings only for representatives and open frames
    m.close()


def test_time_queries_pick_the_right_scenes(tmp_path: Path, stream: SyntheticStream, minilm: Any) -> None:
    mem = Memory(Settings(data_dir=tmp_path / "m", vector={"backend": "memory"}), embedder=minilm)
    _ingest(mem, stream)
    mem.end_stream("cam1", "u1")
    svc = mem.service
    ok = {"around": [], "minute": [], "first_minutes": [], "last_time": []}  # type: ignore[var-annotated]
    for q in stream.questions:
        hits = video_search(svc, q.text, "u1", stream_id="cam1", limit=1)
        good = bool(hits) and any(
            hits[0].start_time <= stream.scenes[k].end and hits[0].end_time >= stream.scenes[k].start
            and (q.anchor is None or q.kind == "first_minutes" or hits[0].start_time <= q.anchor <= hits[0].end_time)
            for k in q.answers
        )
        ok[q.kind].append(good)
    assert all(ok["around"]) and all(ok["minute"]) and all(ok["first_minutes"])
    assert ok["last_time"] and sum(ok["last_time"]) / len(ok["last_time"]) >= 0.8
    # the plain search API filters by time too
    t = stream.scenes[3].start + (stream.scenes[3].end - stream.scenes[3].start) / 2
    hits = mem.search("what happened", "u1", time_range=(t, t), levels=["episode"])
    assert hits and all(h.start_time <= t <= h.end_time for h in hits)
    mem.close()


def test_conversation_and_video_searched_together(mem: Memory, stream: SyntheticStream) -> None:
    _ingest(mem, stream)
    mem.add([{"role": "user", "content": "I left the front door open this morning", "name": "Ann"}], user_id="u1",
            session_id="s1", timestamp=stream.timestamps[0])
    hits = mem.search("front door open", "u1", limit=10)
    assert {h.stream_id for h in hits} >= {"cam1", None}  # a scene and the chat memory, one ranked list
    assert any(h.session_id == "s1" and "front door open" in h.text for h in hits)


def test_delete_stream_cascades_to_both_indexes_and_derived(mem: Memory, stream: SyntheticStream) -> None:
    ids = _ingest(mem, stream)
    other = _ingest(mem, generate(VideoStreamConfig(duration_s=300, seed=8), 0), stream_id="cam2")
    mem.add([{"role": "user", "content": "the cat was fed at noon"}], user_id="u1")
    svc = mem.service
    scope = svc.scope("u1")
    with svc.sql.session() as s:
        scene_ids = list(s.scalars(select(UnitRow.id).where(UnitRow.stream_id == "cam1")))
    # a derived memory (a summary of two scenes)
    from memsvc.stores.sql_schema import UnitRow as U

    summary = "5f0f6a4e-1111-4222-8333-444455556666"
    svc.sql.write(units=[U(id=summary, tenant_id=scope.tenant, user_id="u1", level="summary", text="summary",
                           start_ts=stream.timestamps[0], end_ts=stream.timestamps[-1], meta={})],
                  links=[UnitLinkRow(parent_id=summary, child_id=c) for c in scene_ids[:2]])
    before = mem.stats("u1")
    removed = mem.delete_stream("cam1", "u1")
    assert removed == len(scene_ids) + 1
    after = mem.stats("u1")
    assert after["events"] == before["events"] - len(ids)
    assert svc.vectors.ids(scope).isdisjoint(scene_ids)
    store = svc.video.frames.all()[0]
    assert not store.fetch(rep_ids(scene_ids)) and store.count(scope) == after["frame_vectors"] > 0
    with svc.sql.session() as s:
        assert not list(s.scalars(select(UnitRow.id).where(UnitRow.id.in_([summary, *scene_ids]))))
        assert [r.stream_id for r in s.scalars(select(StreamStateRow))] == ["cam2"]
    assert all(h.stream_id != "cam1" for h in mem.search("door", "u1", limit=50))
    assert mem.get(other[0], "u1").stream_id == "cam2"
    # the stream can start again from scratch
    again = mem.add_frames("cam1", "u1", stream.timestamps[:10], stream.embeddings[:10], stream.captions[:10])
    assert len(again) == 10 and mem.stats("u1")["events"] == after["events"] + 10
    mem.delete_user("u1")
    assert mem.stats("u1")["frame_vectors"] == 0 and mem.stats("u1")["events"] == 0


def test_delete_scene_and_frame(mem: Memory, stream: SyntheticStream) -> None:
    ids = _ingest(mem, stream)
    mem.end_stream("cam1", "u1")
    svc = mem.service
    hit = mem.search("opening the front door", "u1", limit=1, levels=["episode"])[0]
    rep = hit.metadata["representative_frames"][0]
    mem.delete(rep, "u1")  # a representative frame: the scene is rebuilt without it
    rebuilt = mem.get(hit.id, "u1")
    assert rep not in rebuilt.source_ids and len(rebuilt.source_ids) == len(hit.source_ids) - 1
    assert rep not in rebuilt.metadata["representative_frames"]
    assert not svc.video.frames.all()[0].fetch(rep_ids([hit.id], start=len(rebuilt.metadata["representatives"]) + 1))
    mem.delete(hit.id, "u1")  # the scene itself
    assert not svc.video.frames.all()[0].fetch(rep_ids([hit.id]))
    assert hit.id not in svc.vectors.ids(svc.scope("u1"))
    assert len(ids) == len(stream.timestamps)


def test_duplicates_and_out_of_order_frames(mem: Memory, stream: SyntheticStream) -> None:
    ts, emb, caps = stream.timestamps[:300], stream.embeddings[:300], stream.captions[:300]
    ids = mem.add_frames("cam1", "u1", ts[:200], emb[:200], caps[:200])
    again = mem.add_frames("cam1", "u1", ts[150:200], emb[150:200], caps[150:200])  # a retried tail
    assert again == ids[150:200]
    order = np.random.default_rng(0).permutation(100) + 200
    shuffled = mem.add_frames("cam1", "u1", [ts[i] for i in order], emb[order], [caps[i] for i in order])
    assert len(set(shuffled)) == 100 and mem.stats("u1")["events"] == 300
    late = mem.add_frames("cam1", "u1", [ts[10] + timedelta(milliseconds=500)], emb[10:11], ["a late caption"])
    scene = mem.service.sql.units_of_events(late)
    assert len(scene) == 1
    u = mem.get(scene.pop(), "u1")
    assert u.start_time <= ts[10] <= u.end_time and "a late caption" in (u.text or "")
    with pytest.raises(EmbeddingError):
        mem.add_frames("cam1", "u1", ts[:1], np.ones((1, 7)), None)
    assert mem.stats("u1")["events"] == 301


def test_images_need_an_image_embedder(tmp_path: Path, stream: SyntheticStream) -> None:
    m = _memory(tmp_path / "a")
    img = np.zeros((24, 32, 3), dtype=np.uint8)
    with pytest.raises(InvalidInputError, match="image embedder"):
        m.add_frames("cam", "u1", stream.timestamps[:1], images=[img])
    with pytest.raises(InvalidInputError):
        m.add_frames("cam", "u1", stream.timestamps[:1])
    m.close()
    m = _memory(tmp_path / "b", image_embedder={"backend": "pixels"})
    red, blue = img.copy(), img.copy()
    red[..., 0], blue[..., 2] = 255, 255
    frames = [red] * 20 + [blue] * 20
    ids = m.add_frames("cam", "u1", stream.timestamps[:40], images=frames, final=True)
    assert len(ids) == 40 and m.stats("u1")["episode"] == 2 and m.stats("u1")["frame_vectors"] == 2
    ref = m.add_frames("cam2", "u1", stream.timestamps[:1], captions=["a door"], images=["s3://bucket/f.jpg"])
    assert m.service.sql.events(m.service.scope("u1"), ref)[ref[0]].image_ref == "s3://bucket/f.jpg"
    m.close()
