"""Video write path: frames -> events -> online scenes -> compact, indexed scene memories.

For one ``add_frames`` call (one user, one stream), under the user's write lock:

1. drop frames already stored (client ids) and exact duplicates of recent frames (same time, caption
   and embedding); order the rest by time (stable, so equal timestamps keep arrival order);
2. embed new distinct captions with the text embedder (cached);
3. feed the frames to the scene segmenter with the stream's persisted state; frames whose scene is
   decided join their scene's accumulator (MovieChat merging keeps it bounded), the others stay
   pending and are provisionally attached to the open scene;
4. one SQL transaction: frame events, scene units (closed ones final, the open one provisional),
   provenance rows (moved when a pending frame turns out to start the next scene), the stream state,
   and, for closed scenes, dropping the stored embeddings of non-representative frames;
5. index: the scene's caption centroid in the text index, its representatives in the frame index.

A frame older than the open scene (it arrived late, out of order) is stored and attached to the
closed scene that spans its time (or the nearest one); it does not re-segment the past.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import bindparam, delete, func, insert, select, update

from memsvc._types import Level
from memsvc.exceptions import EmbeddingError, InvalidInputError
from memsvc.models import VideoEvent
from memsvc.segmenters.video import SceneFrame, SceneSegmenter
from memsvc.stores import Scope, VectorPoint
from memsvc.stores.sql_schema import EventRow, StreamStateRow, UnitRow, UnitSourceRow
from memsvc.tokens import count_tokens
from memsvc.video.compress import SceneAccumulator, Segment
from memsvc.video.frames import FrameIndex, new_scene_id, rep_id, rep_ids
from memsvc.video.state import PendingFrame, StreamState

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["VideoIngestor"]

_CAPTION_CACHE = 4096


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _unit(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(a))
    return a / n if n > 0 else a


class VideoIngestor:
    """Video memory of one service: ingest, stream state, frame index, scene deletes."""

    def __init__(self, svc: MemoryService) -> None:
        self.svc = svc
        self.cfg = svc.settings.video
        self.segmenter = SceneSegmenter(**self.cfg.segmenter)
        self.frames = FrameIndex(svc)
        self._states: dict[tuple[str, str, str], StreamState] = {}
        self._captions: OrderedDict[str, np.ndarray] = OrderedDict()

    # -- state ---------------------------------------------------------------------------------------
    def _load(self, scope: Scope, stream: str) -> StreamState:
        key = (scope.tenant, scope.user, stream)
        if key not in self._states:
            with self.svc.sql.session() as s:
                row = s.get(StreamStateRow, (scope.tenant, scope.user, stream))
                self._states[key] = StreamState.from_json(row.state) if row is not None else StreamState()
        return self._states[key]

    def forget(self, scope: Scope, stream: str | None = None) -> None:
        """Drop cached state (one stream, or every stream of the user)."""
        for key in [k for k in self._states if k[:2] == (scope.tenant, scope.user) and stream in (None, k[2])]:
            del self._states[key]

    def _caption_vectors(self, captions: Sequence[str]) -> dict[str, np.ndarray]:
        todo = [c for c in dict.fromkeys(captions) if c not in self._captions]
        if todo:
            for c, v in zip(todo, self.svc.embedder.embed(todo), strict=True):
                self._captions[c] = np.asarray(v, dtype=np.float32)
        out = {}
        for c in dict.fromkeys(captions):
            self._captions.move_to_end(c)
            out[c] = self._captions[c]
        while len(self._captions) > _CAPTION_CACHE:
            self._captions.popitem(last=False)
        return out

    # -- ingest --------------------------------------------------------------------------------------
    def add(self, tenant: str, events: Sequence[VideoEvent], final: bool = False) -> list[str]:
        if not events:
            return []
        if len({(e.user_id, e.stream_id) for e in events}) != 1:
            raise InvalidInputError("one add_frames call takes frames of one user and stream")
        scope = Scope(tenant, events[0].user_id)
        stream = events[0].stream_id
        with self.svc.ingestor._lock(scope):
            key = (scope.tenant, scope.user, stream)
            state = self._load(scope, stream)
            work = copy.deepcopy(state)  # mutate a copy: a failed write changes nothing
            ids = self._add(scope, stream, work, events, final)
            self._states[key] = work
            return ids

    def check(self, tenant: str, events: Sequence[VideoEvent]) -> None:
        """Raise what ``add`` would refuse about these frames (one user and stream) without writing:
        lets a call that stores several batches validate all of them first."""
        if not events:
            return
        if len({(e.user_id, e.stream_id) for e in events}) != 1:
            raise InvalidInputError("one add_frames call takes frames of one user and stream")
        scope = Scope(tenant, events[0].user_id)
        with self.svc.ingestor._lock(scope):
            st = self._load(scope, events[0].stream_id)
            space, dim = st.space, st.dim
        sizes = {int(np.asarray(e.embedding).size) for e in events if e.embedding is not None}
        if space is None and len(sizes) > 1 or space == "frame" and sizes - {dim}:
            raise EmbeddingError(f"stream {events[0].stream_id!r} frames must share one embedding size"
                                 f"{'' if dim is None else f' ({dim})'}; got {sorted(sizes)}")

    def end_stream(self, tenant: str, user: str, stream: str) -> int:
        """Close the open scene (decide pending frames with the context there is). Returns scenes closed."""
        scope = Scope(tenant, user)
        with self.svc.ingestor._lock(scope):
            state = self._load(scope, stream)
            if state.scene is None and not state.pending:
                return 0
            work = copy.deepcopy(state)
            closed = self._write(scope, stream, work, [], [], self.segmenter.flush(work.seg), [], final=True)
            self._states[(scope.tenant, scope.user, stream)] = work
            return closed

    def _add(self, scope: Scope, stream: str, st: StreamState, events: Sequence[VideoEvent], final: bool) -> list[str]:
        svc = self.svc
        cids = [e.client_id for e in events if e.client_id]
        known = svc.sql.client_ids(scope, cids) if cids else {}
        ids: list[str] = [""] * len(events)
        fresh: list[int] = []
        batch: dict[str, str] = {}
        keys: dict[int, str] = {}
        for i, e in enumerate(events):
            if e.client_id and e.client_id in known:
                ids[i] = known[e.client_id]
                continue
            key = hashlib.blake2b(
                repr((e.timestamp.timestamp(), e.caption)).encode()
                + (b"" if e.embedding is None else np.asarray(e.embedding, np.float32).tobytes()),
                digest_size=12,
            ).hexdigest()
            dup = batch.get(e.client_id or "") or batch.get(key) or st.recent.get(key)
            if dup:
                ids[i] = dup
                continue
            ids[i] = str(uuid.uuid4())
            batch[key] = ids[i]
            if e.client_id:
                batch[e.client_id] = ids[i]
            keys[i] = key
            fresh.append(i)
        if not fresh:
            return ids
        # the stream's space is fixed by its first frames
        with_emb = [i for i in fresh if events[i].embedding is not None]
        if st.space is None:
            st.space = "frame" if with_emb else "text"
            st.dim = int(np.asarray(events[with_emb[0]].embedding).size) if with_emb else svc.embedder.dim
        if st.space == "frame":
            for i in with_emb:
                if np.asarray(events[i].embedding).size != st.dim:
                    raise EmbeddingError(
                        f"stream {stream!r} holds {st.dim}-d frame embeddings; frame {i} has "
                        f"{np.asarray(events[i].embedding).size}"
                    )
        fresh.sort(key=lambda i: events[i].timestamp)
        capvec = self._caption_vectors([events[i].caption for i in fresh if events[i].caption])  # type: ignore[misc]
        ev_rows: list[dict[str, Any]] = []
        defer = self.cfg.keep_frame_embeddings != "all"
        for k, i in enumerate(fresh):
            e = events[i]
            ev_rows.append({
                "id": ids[i], "tenant_id": scope.tenant, "user_id": scope.user, "kind": "frame", "session_id": None,
                "stream_id": stream, "seq": k + 1, "role": None, "name": None, "text": e.caption,
                "ts": e.timestamp, "client_id": e.client_id, "image_ref": e.image_ref, "meta": dict(e.metadata),
                # raw frame embeddings live in the online state until their scene closes; then only the
                # representatives' are written (growing rows in place, so SQLite does not fragment)
                "embedding": None if e.embedding is None or defer else np.asarray(e.embedding, np.float32).tobytes(),
            })
            st.remember(keys[i], ids[i])
        # in-order frames go to the segmenter; frames older than the open scene are attached late
        open_start = self._open_start(st)
        newest = st.seg.last_ts
        feed: list[PendingFrame] = []
        late: list[tuple[str, float, str | None]] = []
        for i in fresh:
            e = events[i]
            ts = e.timestamp.timestamp()
            if newest is not None and ts < newest:
                if open_start is not None and ts >= open_start:
                    ts = newest  # slightly late: keep it in the open scene, in arrival order
                else:
                    late.append((ids[i], ts, e.caption))
                    continue
            vis = _unit(e.embedding) if (st.space == "frame" and e.embedding is not None) else None
            cv = capvec.get(e.caption) if e.caption else None
            feed.append(PendingFrame(ids[i], st.seg.n + len(feed), ts, vis, e.caption, cv))
        cuts = self.segmenter.push(st.seg, [SceneFrame(f.vis, f.cap_vec, f.ts) for f in feed])
        if final:
            cuts += self.segmenter.flush(st.seg)
        self._write(scope, stream, st, ev_rows, feed, cuts, late, final)
        return ids

    @staticmethod
    def _open_start(st: StreamState) -> float | None:
        if st.scene is not None and st.scene.t0 is not None:
            return st.scene.t0
        return st.pending[0].ts if st.pending else None

    # -- writing -------------------------------------------------------------------------------------
    def _write(self, scope: Scope, stream: str, st: StreamState, ev_rows: list[dict[str, Any]],
               feed: list[PendingFrame], cuts: list[int], late: list[tuple[str, float, str | None]],
               final: bool) -> int:
        cfg = self.cfg
        st.pending += feed
        decided = st.seg.n - 1 if final else st.seg.next_decide
        cutset = set(cuts)
        closed: list[SceneAccumulator] = []
        new_src: list[dict[str, Any]] = []
        moves: list[tuple[str, str, str]] = []

        def attach(f: PendingFrame, unit: str) -> None:
            if f.unit is None:
                new_src.append({"unit_id": unit, "event_id": f.id, "position": f.idx})
            elif f.unit != unit:
                moves.append((f.id, f.unit, unit))
            f.unit = unit

        while st.pending and st.pending[0].idx <= decided:
            f = st.pending.pop(0)
            if st.scene is None:
                st.scene = SceneAccumulator(new_scene_id())
            elif f.idx in cutset and st.scene.frames:
                closed.append(st.scene)
                st.scene = SceneAccumulator(new_scene_id())
            st.scene.add(f.id, f.ts, f.vis, f.caption, f.cap_vec, cfg.buffer_frames, cfg.max_captions,
                         cfg.caption_dedup)
            attach(f, st.scene.unit_id)
        if st.pending and st.scene is None:
            st.scene = SceneAccumulator(new_scene_id())
        for f in st.pending:
            attach(f, st.scene.unit_id)  # type: ignore[union-attr]
        opened: SceneAccumulator | None = None
        if final and st.scene is not None and st.scene.frames:
            closed.append(st.scene)
            st.scene = None
        elif st.scene is not None:
            opened = st.scene.copy()
            for f in st.pending:
                opened.add(f.id, f.ts, f.vis, f.caption, f.cap_vec, cfg.buffer_frames, cfg.max_captions,
                           cfg.caption_dedup)
        units, text_points, frame_points, stale = [], [], [], []
        rep_rows: list[dict[str, Any]] = []
        for acc in closed:
            u, tp, fps = self._scene_rows(scope, stream, st, acc, closed=True)
            units.append(u)
            text_points += tp
            frame_points += fps
            stale += rep_ids([acc.unit_id], start=len(fps) + 1)
            rep_rows += [{"rid": r.rep_id, "emb": np.asarray(r.rep_vec, np.float32).tobytes()}
                         for r in acc.representatives(cfg.frames_per_rep, cfg.max_reps)]
        if opened is not None and opened.frames:
            u, tp, fps = self._scene_rows(scope, stream, st, opened, closed=False)
            units.append(u)
            text_points += tp
            frame_points += fps
            if len(fps) < st.open_points:
                stale += rep_ids([opened.unit_id], start=len(fps) + 1)
            st.open_points = len(fps)
        else:
            st.open_points = 0
        late_units = self._late_rows(scope, stream, late, new_src)
        svc = self.svc
        with svc.sql.session() as s:
            if ev_rows:
                seq0 = s.scalar(select(func.max(EventRow.seq)).where(
                    EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user)) or 0
                for r in ev_rows:
                    r["seq"] += seq0
                s.connection().execute(insert(EventRow.__table__), ev_rows)
            for u in units + late_units:
                s.merge(u)
            s.flush()
            if new_src:
                s.connection().execute(insert(UnitSourceRow.__table__), new_src)
            for eid, old, new in moves:
                s.execute(update(UnitSourceRow).where(UnitSourceRow.unit_id == old, UnitSourceRow.event_id == eid)
                          .values(unit_id=new).execution_options(synchronize_session=False))
            if rep_rows and cfg.keep_frame_embeddings == "representatives":
                table = EventRow.__table__
                s.connection().execute(
                    update(table).where(table.c.id == bindparam("rid")).values(embedding=bindparam("emb")), rep_rows)
            s.merge(StreamStateRow(tenant_id=scope.tenant, user_id=scope.user, stream_id=stream, state=st.to_json()))
        if text_points:
            svc.vectors.upsert(text_points)
        if frame_points or stale:
            fstore = self.frames.store(int(st.dim or 0)) if st.space == "frame" else None
            if fstore is not None:
                if stale:
                    fstore.delete(stale)
                if frame_points:
                    fstore.upsert(frame_points)
        return len(closed)

    def _scene_rows(self, scope: Scope, stream: str, st: StreamState, acc: SceneAccumulator,
                    closed: bool) -> tuple[UnitRow, list[VectorPoint], list[VectorPoint]]:
        cfg, svc = self.cfg, self.svc
        reps: list[Segment] = acc.representatives(cfg.frames_per_rep, cfg.max_reps)
        t0, t1 = float(acc.t0 or 0.0), float(acc.t1 or 0.0)
        text = acc.text(stream, cfg.caption_tokens)
        cap = acc.caption_vector()
        meta: dict[str, Any] = {
            "scene": True, "frames": acc.frames, "space": st.space,
            "representative_frames": [r.rep_id for r in reps],
            "representatives": [{"frame": r.rep_id, "frames": r.n, "start": _dt(r.t0).isoformat(),
                                 "end": _dt(r.t1).isoformat()} for r in reps],
            "captions": sum(c.count for c in acc.captions),
        }
        unit = UnitRow(
            id=acc.unit_id, tenant_id=scope.tenant, user_id=scope.user, level=Level.EPISODE.value, stream_id=stream,
            text=text, start_ts=_dt(t0), end_ts=_dt(t1), status="closed" if closed else "open",
            # "indexed" is written with the row: a crash before the upsert below leaves a unit that
            # reconcile finds missing from the index and re-indexes (one transaction per chunk, not two)
            index_state="indexed" if cap is not None else "none", token_count=count_tokens(text),
            segmenter=f"{self.segmenter.name}:{self.segmenter.method}", meta=meta,
            embedder=svc.embedder.name, embedder_version=svc.embedder.version,
            compressor="moviechat-merge", compressor_version="1",
        )
        tps = [] if cap is None else [VectorPoint(id=acc.unit_id, vector=cap, tenant=scope.tenant, user=scope.user,
                                                  level=Level.EPISODE.value, start=t0, end=t1, stream=stream)]
        fps = [VectorPoint(id=rep_id(acc.unit_id, k + 1), vector=r.mean(), tenant=scope.tenant, user=scope.user,
                           level=Level.EPISODE.value, start=t0, end=t1, stream=stream)
               for k, r in enumerate(reps)] if st.space == "frame" else []
        return unit, tps, fps

    def _late_rows(self, scope: Scope, stream: str, late: list[tuple[str, float, str | None]],
                   new_src: list[dict[str, Any]]) -> list[UnitRow]:
        """Attach late frames to the stream's scene spanning their time (or the nearest one)."""
        if not late:
            return []
        touched: dict[str, UnitRow] = {}
        with self.svc.sql.session() as s:
            for eid, ts, caption in late:
                t = _dt(ts)
                q = select(UnitRow).where(
                    UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user, UnitRow.stream_id == stream,
                    UnitRow.level == Level.EPISODE.value, UnitRow.deleted_at.is_(None),
                )
                row = s.scalars(q.where(UnitRow.start_ts <= t, UnitRow.end_ts >= t).limit(1)).first()
                if row is None:
                    before = s.scalars(q.where(UnitRow.end_ts < t).order_by(UnitRow.end_ts.desc()).limit(1)).first()
                    after = s.scalars(q.where(UnitRow.start_ts > t).order_by(UnitRow.start_ts).limit(1)).first()
                    row = before or after
                if row is None:
                    continue
                row = touched.get(row.id, row)
                new_src.append({"unit_id": row.id, "event_id": eid, "position": -1})
                if caption and caption not in row.text:
                    row.text = f"{row.text}; {caption}"
                    row.token_count = count_tokens(row.text)
                    row.index_state = "stale"
                row.start_ts, row.end_ts = min(row.start_ts, t), max(row.end_ts, t)
                row.meta = {**(row.meta or {}), "frames": int((row.meta or {}).get("frames", 0)) + 1}
                touched[row.id] = row
        stale = [u for u in touched.values() if u.index_state == "stale"]
        if stale:
            vecs = self.svc.embedder.embed([u.text for u in stale])
            self.svc.vectors.upsert([
                VectorPoint(id=u.id, vector=v, tenant=u.tenant_id, user=u.user_id, level=u.level,
                            start=u.start_ts.timestamp(), end=u.end_ts.timestamp(), stream=u.stream_id)
                for u, v in zip(stale, vecs, strict=True)
            ])
            for u in stale:
                u.index_state = "indexed"
        return list(touched.values())

    # -- deletes -------------------------------------------------------------------------------------
    def units_deleted(self, scope: Scope, unit_ids: Sequence[str]) -> None:
        """Cascade to the frame index; a stream whose open scene died starts afresh."""
        if not unit_ids:
            return
        self.frames.delete_scenes(unit_ids)
        dead = set(unit_ids)
        with self.svc.sql.session() as s:
            rows = list(s.scalars(select(StreamStateRow).where(
                StreamStateRow.tenant_id == scope.tenant, StreamStateRow.user_id == scope.user)))
            for row in rows:
                st = StreamState.from_json(row.state)
                if (st.scene is not None and st.scene.unit_id in dead) or any(p.unit in dead for p in st.pending):
                    s.delete(row)
                    self.forget(scope, row.stream_id)

    def delete_stream(self, scope: Scope, stream: str) -> int:
        """Every event, scene, derived unit and vector of one stream. Returns units removed."""
        svc = self.svc
        with svc.ingestor._lock(scope):
            with svc.sql.session() as s:
                scene_ids = list(s.scalars(select(UnitRow.id).where(
                    UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user, UnitRow.stream_id == stream)))
                event_ids = list(s.scalars(select(EventRow.id).where(
                    EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user, EventRow.stream_id == stream)))
            dead = svc.sql.descendants(set(scene_ids) | svc.sql.units_of_events(event_ids, scope), scope)
            svc.sql.delete_units(sorted(dead), scope)
            svc.sql.delete_events(scope, event_ids)
            with svc.sql.session() as s:
                s.execute(delete(StreamStateRow).where(
                    StreamStateRow.tenant_id == scope.tenant, StreamStateRow.user_id == scope.user,
                    StreamStateRow.stream_id == stream))
            svc.vectors.delete(sorted(dead))
            self.frames.delete_scenes(sorted(dead))
            self.forget(scope, stream)
            svc.ingestor.forget_cache(scope)
            svc.notify("deleted", scope, dead, "delete_stream")
        return len(dead)

    def delete_scope(self, scope: Scope) -> None:
        """The user's stream states and frame vectors (``delete_user``)."""
        with self.svc.sql.session() as s:
            s.execute(delete(StreamStateRow).where(
                StreamStateRow.tenant_id == scope.tenant, StreamStateRow.user_id == scope.user))
        self.frames.delete_scope(scope)
        self.forget(scope)

    def rebuild_scenes(self, scope: Scope, unit_ids: Sequence[str]) -> None:
        """Rebuild scenes that lost frames (``Memory.delete`` of a frame event): text and caption vector
        from the remaining frames, representatives from the remaining representative frames. A scene
        left without frames is deleted; a stream whose open scene changed starts afresh."""
        svc = self.svc
        rows = svc.sql.units(scope, unit_ids)
        srcs = svc.sql.sources(list(rows), scope)
        empty: list[str] = []
        text_points: list[VectorPoint] = []
        frame_points: dict[int, list[VectorPoint]] = {}
        changed: list[UnitRow] = []
        for uid, u in rows.items():
            evs = svc.sql.events(scope, srcs.get(uid, []))
            if not evs:
                empty.append(uid)
                continue
            ordered = sorted(evs.values(), key=lambda e: (e.ts, e.seq))
            acc = SceneAccumulator(uid)
            caps = self._caption_vectors([e.text for e in ordered if e.text])
            for e in ordered:
                acc.add(e.id, e.ts.timestamp(), None, e.text, caps.get(e.text or ""), 10**9, self.cfg.max_captions,
                        self.cfg.caption_dedup)
            meta = dict(u.meta or {})
            reps = [r for r in meta.get("representatives", []) if r["frame"] in evs and evs[r["frame"]].embedding]
            meta.update(frames=len(ordered), representatives=reps, representative_frames=[r["frame"] for r in reps])
            u.meta, u.text = meta, acc.text(u.stream_id or "", self.cfg.caption_tokens)
            u.token_count = count_tokens(u.text)
            u.start_ts, u.end_ts = ordered[0].ts, ordered[-1].ts
            cap = acc.caption_vector()
            u.index_state = "indexed" if cap is not None else "none"
            changed.append(u)
            base = {"tenant": u.tenant_id, "user": u.user_id, "level": u.level, "start": u.start_ts.timestamp(),
                    "end": u.end_ts.timestamp(), "stream": u.stream_id}
            if cap is not None:
                text_points.append(VectorPoint(id=uid, vector=cap, **base))  # type: ignore[arg-type]
            for k, r in enumerate(reps):
                vec = np.frombuffer(evs[r["frame"]].embedding, dtype=np.float32)  # type: ignore[arg-type]
                frame_points.setdefault(vec.size, []).append(
                    VectorPoint(id=rep_id(uid, k + 1), vector=_unit(vec), **base))  # type: ignore[arg-type]
        self.units_deleted(scope, [u.id for u in changed] + empty)  # stale reps out, open streams reset
        svc.sql.delete_units(empty, scope)
        svc.vectors.delete(empty + [u.id for u in changed if u.index_state == "none"])
        if changed:
            svc.sql.write(units=changed)
        if text_points:
            svc.vectors.upsert(text_points)
        for dim, pts in frame_points.items():
            fstore = self.frames.store(dim)
            if fstore is not None:
                fstore.upsert(pts)
