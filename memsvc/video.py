"""Video write path (first version): frames -> events, captioned frames -> units, scenes -> episodes.

Frames are stored as events (caption, the client's frame embedding, image reference). A captioned
frame becomes a turn-level unit embedded with the text embedder. Frames are grouped into scenes by
the configured segmenter over the frame embeddings (caption embeddings when no frame embedding is
given); a scene is an episode unit whose text lists its distinct captions and whose vector is the
centroid of its caption vectors, so text queries reach it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from memsvc._types import Level
from memsvc.exceptions import InvalidInputError
from memsvc.models import VideoEvent
from memsvc.segmenters import SegmentItem
from memsvc.stores import Scope, VectorPoint, normalize_rows
from memsvc.stores.sql_schema import EventRow, UnitRow, UnitSourceRow
from memsvc.tokens import count_tokens

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["VideoIngestor"]


class VideoIngestor:
    """Stores one chunk of one stream (frames in timestamp order)."""

    def __init__(self, service: MemoryService) -> None:
        self.svc = service

    def add(self, events: Sequence[VideoEvent]) -> list[str]:
        if not events:
            return []
        if len({(e.user_id, e.stream_id) for e in events}) != 1:
            raise InvalidInputError("one add_frames call takes frames of one user and stream")
        scope = Scope(self.svc.tenant, events[0].user_id)
        with self.svc.ingestor._lock(scope):
            return self._add(scope, events)

    def _add(self, scope: Scope, events: Sequence[VideoEvent]) -> list[str]:
        svc = self.svc
        stream = events[0].stream_id
        known = svc.sql.client_ids(scope, [e.client_id for e in events if e.client_id])
        order = sorted(range(len(events)), key=lambda i: events[i].timestamp)
        ids = [known.get(e.client_id or "", "") or str(uuid.uuid4()) for e in events]
        fresh = [i for i in order if not (events[i].client_id and events[i].client_id in known)]
        if not fresh:
            return ids
        captioned = [i for i in fresh if events[i].caption]
        cap_vecs = svc.embedder.embed([f"[{stream}] {events[i].caption}" for i in captioned])
        cap_of = dict(zip(captioned, cap_vecs, strict=True))
        seq0 = svc.sql.max_seq(scope)
        producer = {"embedder": svc.embedder.name, "embedder_version": svc.embedder.version}
        ev_rows, units, sources, points = [], [], [], []
        for k, i in enumerate(fresh):
            e = events[i]
            emb = None if e.embedding is None else np.asarray(e.embedding, dtype=np.float32).tobytes()
            ev_rows.append(EventRow(
                id=ids[i], tenant_id=scope.tenant, user_id=scope.user, kind="frame", stream_id=stream, seq=seq0 + k + 1,
                role=None, name=None, text=e.caption, ts=e.timestamp, client_id=e.client_id, embedding=emb,
                image_ref=e.image_ref, meta=dict(e.metadata),
            ))
            if i in cap_of:
                text = f"[{stream}] {e.caption}"
                units.append(UnitRow(
                    id=ids[i], tenant_id=scope.tenant, user_id=scope.user, level=Level.TURN.value, stream_id=stream,
                    text=text, start_ts=e.timestamp, end_ts=e.timestamp, status="closed", index_state="pending",
                    token_count=count_tokens(text), meta={"frame": True}, **producer,
                ))
                sources.append(UnitSourceRow(unit_id=ids[i], event_id=ids[i], position=0))
                points.append(VectorPoint(id=ids[i], vector=cap_of[i], tenant=scope.tenant, user=scope.user,
                                          level=Level.TURN.value, start=e.timestamp.timestamp(),
                                          end=e.timestamp.timestamp(), stream=stream))
        # scenes: segment this chunk (frame features when given, else caption vectors)
        items, members = [], []
        for i in fresh:
            e = events[i]
            feat = e.embedding if e.embedding is not None else cap_of.get(i)
            if feat is None:
                continue
            items.append(SegmentItem(embedding=np.asarray(feat, dtype=np.float32), timestamp=e.timestamp,
                                     text=e.caption or ""))
            members.append(i)
        sizes = svc.segmenter.split(items, final=True) if items else []
        start = 0
        for size in sizes:
            seg = members[start : start + size]
            start += size
            caps = list(dict.fromkeys(events[i].caption for i in seg if events[i].caption))
            uid = str(uuid.uuid4())
            t0, t1 = events[seg[0]].timestamp, events[seg[-1]].timestamp
            text = f"[{stream}] " + ("; ".join(caps) if caps else "(no captions)")
            vecs = [cap_of[i] for i in seg if i in cap_of]
            units.append(UnitRow(
                id=uid, tenant_id=scope.tenant, user_id=scope.user, level=Level.EPISODE.value, stream_id=stream,
                text=text, start_ts=t0, end_ts=t1, status="closed", index_state="pending" if vecs else "none",
                token_count=count_tokens(text), segmenter=svc.segmenter.name,
                meta={"scene": True, "frames": len(seg)}, **producer,
            ))
            sources += [UnitSourceRow(unit_id=uid, event_id=ids[i], position=p) for p, i in enumerate(seg)]
            if vecs:
                points.append(VectorPoint(id=uid, vector=normalize_rows(np.mean(np.stack(vecs), axis=0))[0],
                                          tenant=scope.tenant, user=scope.user, level=Level.EPISODE.value,
                                          start=t0.timestamp(), end=t1.timestamp(), stream=stream))
        svc.sql.write(events=ev_rows, units=units, sources=sources)
        svc.vectors.upsert(points)
        if svc.ingestor.lexical is not None:
            from memsvc.pipeline import lexical_doc

            svc.ingestor.lexical.upsert([lexical_doc(u) for u in units if u.index_state == "pending"])
        svc.sql.set_index_state([p.id for p in points], "indexed")
        return ids
