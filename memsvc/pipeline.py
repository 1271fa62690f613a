"""Write path: events -> SQL (truth) -> online segmentation into episodes -> vectors.

No LLM is called here. Order of work for one ``add``:
  1. drop events whose client id is already stored (idempotent retries), embed the new turns;
  2. one SQL transaction: events, their turn units, new/extended episode units, provenance rows, all
     with ``index_state=pending``;
  3. upsert vectors and lexical (BM25) documents, then mark the units ``indexed``.
Relative dates in a turn ("yesterday") are resolved against the turn's timestamp and written next to
the expression in the stored unit text ("yesterday [2023-05-07]"); the resolved ranges also go to the
unit's metadata (``dates``) for temporal ranking.
With a ``Denoiser`` (``Settings.compressor``), each turn is also compressed: the compressed text is
stored on the unit (``meta.compressed_text``, ``compressor``/``compressor_version``) and, by config, is
what the turn is embedded from (SeCom's denoising; the episode centroid then comes from compressed
turns), what the keyword index holds and what search returns.
A crash between 2 and 3 leaves ``pending`` units that ``reindex_pending`` (run on open and by
reconcile) indexes again, so an acknowledged write is never lost and is searchable on return.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from memsvc._types import Level
from memsvc.compressors.denoise import COMPRESSED_TEXT, Denoiser
from memsvc.embedders import Embedder
from memsvc.exceptions import InvalidInputError
from memsvc.models import ChatEvent
from memsvc.retrieval.temporal import annotate
from memsvc.segmenters import Segmenter, SegmentItem
from memsvc.stores import LexicalDoc, LexicalIndex, Scope, VectorPoint, VectorStore, normalize_rows
from memsvc.stores.sql import SQLRecordStore
from memsvc.stores.sql_schema import EventRow, UnitRow, UnitSourceRow
from memsvc.tokens import count_tokens
from memsvc.validation import check_metadata

__all__ = ["COMPRESSED_TEXT", "Ingestor", "lexical_doc", "turn_text", "unit_text"]


def turn_text(role: str | None, name: str | None, text: str) -> str:
    """How a turn reads inside a memory unit: ``"Caroline: I went ..."``."""
    who = name or role or "user"
    return f"{who}: {text}"


def unit_text(role: str | None, name: str | None, text: str, ts: datetime, resolve_dates: bool = True
              ) -> tuple[str, list[list[str]]]:
    """A turn unit's stored text (relative dates resolved against ``ts``) and its ``dates`` metadata:
    ``[[start_iso, end_iso, expression], ...]``."""
    line = turn_text(role, name, text)
    if not resolve_dates:
        return line, []
    out, spans = annotate(line, ts)
    return out, [[s.start.isoformat(), s.end.isoformat(), s.text] for s in spans]


OPEN_CACHE = 10_000
"""Open episodes kept in memory (one per live session); older ones reload from the stores."""
CONTEXT_TURNS = 4
"""A turn's lexical ``context`` field holds it and up to this many turns before it in its session."""


def lexical_doc(u: UnitRow, context: str | None = None, compressed: bool = False) -> LexicalDoc:
    """The keyword-index document of a unit (``context``: the turn with the turns before it);
    ``compressed``: its compressed text when it has one."""
    text = ((u.meta or {}).get(COMPRESSED_TEXT) or u.text) if compressed else u.text
    return LexicalDoc(id=u.id, text=text, tenant=u.tenant_id, user=u.user_id, level=u.level,
                      start=_posix(u.start_ts), end=_posix(u.end_ts), session=u.session_id, stream=u.stream_id,
                      context=context)


@dataclass
class _Open:
    """An open episode in memory: its unit, member ids and their vectors/items."""

    unit_id: str
    event_ids: list[str] = field(default_factory=list)
    items: list[SegmentItem] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    """Original turn texts (their compressed forms come from the denoiser's memory)."""


def _posix(ts: datetime) -> float:
    return ts.timestamp()


class Ingestor:
    """Turns validated events into stored, indexed memory units."""

    def __init__(
        self,
        sql: SQLRecordStore,
        vectors: VectorStore,
        embedder: Embedder,
        segmenter: Segmenter,
        lexical: LexicalIndex | None = None,
        resolve_dates: bool = True,
        denoiser: Denoiser | None = None,
    ) -> None:
        self.sql = sql
        self.vectors = vectors
        self.embedder = embedder
        self.segmenter = segmenter
        self.lexical = lexical
        self.resolve_dates = resolve_dates
        self.denoiser = denoiser
        # the open episode of each live session (members and their vectors): least recently used first,
        # at most OPEN_CACHE of them; an evicted session's episode reloads from SQL and the vector index
        self._open: OrderedDict[tuple[str, str, str], _Open] = OrderedDict()
        self._recent: dict[tuple[str, str, str | None], list[str]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def _lock(self, scope: Scope) -> threading.Lock:
        with self._guard:
            return self._locks[(scope.tenant, scope.user)]

    # -- public --------------------------------------------------------------------------------------
    def add_chat(self, tenant: str, events: Sequence[ChatEvent]) -> list[str]:
        """Store chat events (all of one user); returns their ids in order (existing ids for
        client ids already stored)."""
        if not events:
            return []
        users = {e.user_id for e in events}
        if len(users) != 1:
            raise InvalidInputError("add_chat takes events of one user; group them by user")
        for e in events:
            check_metadata(e.metadata)
        scope = Scope(tenant, events[0].user_id)
        with self._lock(scope):
            return self._add_locked(scope, events)

    def _add_locked(self, scope: Scope, events: Sequence[ChatEvent]) -> list[str]:
        cids = [e.client_id for e in events if e.client_id]
        known = self.sql.client_ids(scope, cids) if cids else {}
        ids: list[str] = []
        fresh: list[tuple[str, ChatEvent]] = []
        batch_cids: dict[str, str] = {}
        for e in events:
            if e.client_id and e.client_id in known:
                ids.append(known[e.client_id])
                continue
            if e.client_id and e.client_id in batch_cids:
                ids.append(batch_cids[e.client_id])
                continue
            eid = str(uuid.uuid4())
            if e.client_id:
                batch_cids[e.client_id] = eid
            ids.append(eid)
            fresh.append((eid, e))
        if not fresh:
            return ids
        now = datetime.now(UTC)
        annotated = [unit_text(e.role, e.name, e.text, e.timestamp or now, self.resolve_dates) for _, e in fresh]
        texts = [t for t, _ in annotated]
        ctexts = self.denoiser.texts(texts) if self.denoiser else None
        vecs = self._embed_turns(texts, ctexts)
        seq0 = self.sql.max_seq(scope)
        producer = {"embedder": self.embedder.name, "embedder_version": self.embedder.version}
        ev_rows, unit_rows, src_rows, points = [], [], [], []
        for k, ((eid, e), text, vec) in enumerate(zip(fresh, texts, vecs, strict=True)):
            ts = e.timestamp or now
            ev_rows.append(
                EventRow(
                    id=eid, tenant_id=scope.tenant, user_id=scope.user, kind="turn", session_id=e.session_id,
                    stream_id=None, seq=seq0 + k + 1, role=e.role, name=e.name, text=e.text, ts=ts,
                    client_id=e.client_id, meta=dict(e.metadata),
                )
            )
            unit_rows.append(
                UnitRow(
                    id=eid, tenant_id=scope.tenant, user_id=scope.user, level=Level.TURN.value,
                    session_id=e.session_id, text=text, start_ts=ts, end_ts=ts, status="closed",
                    index_state="pending", token_count=count_tokens(text), segmenter=None,
                    meta={"dates": annotated[k][1]} if annotated[k][1] else {},
                    **producer,
                )
            )
            if ctexts is not None:
                self._mark(unit_rows[-1], ctexts[k])
            src_rows.append(UnitSourceRow(unit_id=eid, event_id=eid, position=0))
            points.append(
                VectorPoint(id=eid, vector=vec, tenant=scope.tenant, user=scope.user, level=Level.TURN.value,
                            start=_posix(ts), end=_posix(ts), session=e.session_id)
            )
        ep_units, ep_sources, ep_points, replaced = self._segment(scope, fresh, texts, vecs, [r.ts for r in ev_rows], producer)
        self.sql.write(
            events=ev_rows, units=unit_rows + ep_units, sources=src_rows + ep_sources, replace_sources_of=replaced
        )
        self.vectors.upsert(points + ep_points)
        if self.lexical is not None:
            ctx = self._contexts_online(scope, fresh, texts)
            self.lexical.upsert([self.lexical_doc(u, ctx[k]) for k, u in enumerate(unit_rows)]
                                + [self.lexical_doc(u) for u in ep_units])
        self.sql.set_index_state([p.id for p in points + ep_points], "indexed")
        return ids

    # -- denoising -------------------------------------------------------------------------------------
    def lexical_doc(self, u: UnitRow, context: str | None = None) -> LexicalDoc:
        """``lexical_doc`` with this ingestor's choice of text (compressed when ``compressor.lexical``)."""
        if self.denoiser is None or not self.denoiser.lexical:
            return lexical_doc(u, context)
        if context is not None and _denoisable(u):
            context = self.denoiser.text(context)
        return lexical_doc(u, context, compressed=True)

    def _embed_turns(self, texts: Sequence[str], compressed: Sequence[str] | None = None) -> np.ndarray:
        """Turn vectors: of the text, or with denoising of its compressed text (``compressed``, computed
        when not given), mixed with the text's own embedding by ``Denoiser.mix``."""
        den = self.denoiser
        if den is None or not den.embed or not texts:
            return self.embedder.embed(list(texts))
        comp = list(compressed) if compressed is not None else den.texts(texts)
        vc = self.embedder.embed(comp)
        if den.mix >= 1.0:
            return vc
        return normalize_rows(den.mix * vc + (1.0 - den.mix) * self.embedder.embed(list(texts)))

    def _mark(self, u: UnitRow, compressed: str) -> bool:
        """Record ``compressed`` as the unit's compressed text; True when that changed the unit."""
        if self.denoiser is None:
            return False
        meta = dict(u.meta or {})
        prod = self.denoiser.producer
        if meta.get(COMPRESSED_TEXT) == compressed and u.compressor == prod["compressor"] \
                and u.compressor_version == prod["compressor_version"]:
            return False
        meta[COMPRESSED_TEXT] = compressed
        meta["compressed_tokens"] = count_tokens(compressed)
        u.meta = meta
        u.compressor, u.compressor_version = prod["compressor"], prod["compressor_version"]
        return True

    def _contexts_online(self, scope: Scope, fresh: Sequence[tuple[str, ChatEvent]], texts: Sequence[str]) -> list[str]:
        """Context field of each new turn: the turn after the last ``CONTEXT_TURNS`` turns of its session
        (cached; loaded from SQL once per session)."""
        out = []
        for (_, e), text in zip(fresh, texts, strict=True):
            key = (scope.tenant, scope.user, e.session_id)
            if key not in self._recent:
                if len(self._recent) > 10_000:  # bound the cache; entries reload from SQL
                    self._recent.clear()
                tail = self.sql.session_tail(scope, e.session_id, CONTEXT_TURNS + len(fresh))
                mine = {eid for eid, _ in fresh}
                self._recent[key] = [self._text(r) for r in tail if r.id not in mine][-CONTEXT_TURNS:]
            prev = self._recent[key]
            out.append("\n".join([*prev, text]))
            self._recent[key] = [*prev, text][-CONTEXT_TURNS:]
        return out

    def contexts(self, units: Sequence[UnitRow]) -> dict[str, str]:
        """Context field of stored turn units, rebuilt from SQL (repair and index rebuilds)."""
        out: dict[str, str] = {}
        by_scope: dict[Scope, list[UnitRow]] = defaultdict(list)
        for u in units:
            if u.level == Level.TURN.value and u.stream_id is None:
                by_scope[Scope(u.tenant_id, u.user_id)].append(u)
        for scope, rows in by_scope.items():
            pos = self.sql.positions(scope, [u.id for u in rows])
            want = {p[0] - d for p in pos.values() for d in range(1, CONTEXT_TURNS + 1)}
            at = self.sql.events_at(scope, sorted(w for w in want if w > 0))
            evs = self.sql.events(scope, [i for i, _, _ in at.values()])
            for u in rows:
                if u.id not in pos:
                    continue
                seq, session, _ = pos[u.id]
                prev = []
                for d in range(CONTEXT_TURNS, 0, -1):
                    hit = at.get(seq - d)
                    if hit is not None and hit[1] == session and hit[0] in evs and evs[hit[0]].kind == "turn":
                        prev.append(self._text(evs[hit[0]]))
                out[u.id] = "\n".join([*prev, u.text])
        return out

    # -- segmentation ----------------------------------------------------------------------------------
    def _load_open(self, scope: Scope, session: str) -> _Open | None:
        key = (scope.tenant, scope.user, session)
        if key in self._open:
            self._open.move_to_end(key)
            return self._open[key]
        rows = [u for u in self.sql.open_episodes(scope) if (u.session_id or "") == session and u.stream_id is None]
        if not rows:
            return None
        unit = rows[0]
        eids = self.sql.sources([unit.id]).get(unit.id, [])
        evs = self.sql.events(scope, eids)
        vecs = self.vectors.fetch(eids)
        missing = [i for i in eids if i not in vecs]
        if missing:  # index lost them: re-embed from SQL text (the truth)
            got = self._embed_turns([self._text(evs[i]) for i in missing])
            vecs.update(dict(zip(missing, got, strict=True)))
        op = _Open(unit_id=unit.id)
        for i in eids:
            if i not in evs:
                continue
            e = evs[i]
            op.event_ids.append(i)
            op.texts.append(self._text(e))
            op.items.append(SegmentItem(embedding=vecs[i], timestamp=e.ts, text=e.text or "", speaker=e.name or e.role))
        self._open[key] = op
        return op

    def _text(self, e: EventRow) -> str:
        return unit_text(e.role, e.name, e.text or "", e.ts, self.resolve_dates)[0]

    def _segment(
        self,
        scope: Scope,
        fresh: Sequence[tuple[str, ChatEvent]],
        texts: Sequence[str],
        vecs: np.ndarray,
        ev_rows_ts: Sequence[datetime],
        producer: dict[str, str],
    ) -> tuple[list[UnitRow], list[UnitSourceRow], list[VectorPoint], list[str]]:
        by_session: dict[str, list[int]] = defaultdict(list)
        for k, (_, e) in enumerate(fresh):
            by_session[e.session_id or ""].append(k)
        units: list[UnitRow] = []
        sources: list[UnitSourceRow] = []
        points: list[VectorPoint] = []
        replaced: list[str] = []
        for session, idxs in by_session.items():
            op = self._load_open(scope, session) or _Open(unit_id=str(uuid.uuid4()))
            ids = op.event_ids + [fresh[k][0] for k in idxs]
            all_texts = op.texts + [texts[k] for k in idxs]
            items = op.items + [
                SegmentItem(embedding=vecs[k], timestamp=ev_rows_ts[k], text=fresh[k][1].text,
                            speaker=fresh[k][1].name or fresh[k][1].role)
                for k in idxs
            ]
            sizes = self.segmenter.split(items, final=False)
            start = 0
            unit_id = op.unit_id
            for size in [*sizes, len(items) - sum(sizes)]:
                if size == 0:
                    continue
                closed = start + size <= sum(sizes)
                seg = slice(start, start + size)
                u, s, p = self._episode_rows(
                    scope, session or None, unit_id, ids[seg], all_texts[seg], items[seg], closed, producer
                )
                units.append(u)
                sources += s
                points.append(p)
                replaced.append(unit_id)
                start += size
                unit_id = str(uuid.uuid4())
            rest = len(items) - sum(sizes)
            key = (scope.tenant, scope.user, session)
            if rest:
                tail = slice(len(items) - rest, len(items))
                self._open[key] = _Open(units[-1].id, ids[tail], items[tail], all_texts[tail])
                self._open.move_to_end(key)
                while len(self._open) > OPEN_CACHE:
                    self._open.popitem(last=False)
            else:
                self._open.pop(key, None)
        return units, sources, points, replaced

    def _episode_rows(
        self,
        scope: Scope,
        session: str | None,
        unit_id: str,
        event_ids: Sequence[str],
        texts: Sequence[str],
        items: Sequence[SegmentItem],
        closed: bool,
        producer: dict[str, str],
    ) -> tuple[UnitRow, list[UnitSourceRow], VectorPoint]:
        text = "\n".join(texts)
        start, end = min(i.timestamp for i in items), max(i.timestamp for i in items)
        centroid = normalize_rows(np.mean(np.stack([i.embedding for i in items]), axis=0))[0]
        unit = UnitRow(
            id=unit_id, tenant_id=scope.tenant, user_id=scope.user, level=Level.EPISODE.value, session_id=session,
            text=text, start_ts=start, end_ts=end, status="closed" if closed else "open", index_state="pending",
            token_count=count_tokens(text), segmenter=getattr(self.segmenter, "name", type(self.segmenter).__name__),
            meta={"turns": len(items), "vector": "centroid"}, **producer,
        )
        if self.denoiser is not None:
            self._mark(unit, self.denoiser.text(text))
        srcs = [UnitSourceRow(unit_id=unit_id, event_id=e, position=i) for i, e in enumerate(event_ids)]
        point = VectorPoint(id=unit_id, vector=centroid, tenant=scope.tenant, user=scope.user,
                            level=Level.EPISODE.value, start=_posix(start), end=_posix(end), session=session)
        return unit, srcs, point

    def forget_cache(self, scope: Scope | None = None) -> None:
        """Drop cached open-episode state (after deletes), for one user or all."""
        if scope is None:
            self._open.clear()
            self._recent.clear()
            return
        for key in [k for k in self._open if k[:2] == (scope.tenant, scope.user)]:
            del self._open[key]
        for rkey in [k for k in self._recent if k[:2] == (scope.tenant, scope.user)]:
            del self._recent[rkey]

    # -- repair ----------------------------------------------------------------------------------------
    def reindex(self, units: Sequence[UnitRow]) -> int:
        """(Re)index units from their SQL text: turns are re-embedded, episodes get the centroid of
        their turns. Returns how many were indexed."""
        if not units:
            return 0
        turns = [u for u in units if u.level != Level.EPISODE.value]
        episodes = [u for u in units if u.level == Level.EPISODE.value]
        points: list[VectorPoint] = []
        texts = {u.id: u.text for u in units}
        inputs = dict(texts)  # what each unit is embedded from (its compressed text when denoising)
        if self.denoiser is not None:
            den = [u for u in units if _denoisable(u)]
            changed = []
            for u, c in zip(den, self.denoiser.texts([u.text for u in den]), strict=True):
                if self.denoiser.embed:
                    inputs[u.id] = c
                if self._mark(u, c):
                    changed.append(u)
            if changed:  # units stored before denoising was on (or by another compressor)
                self.sql.write(units=changed)
        if turns:
            vecs = self._embed_turns([texts[u.id] for u in turns], [inputs[u.id] for u in turns])
            points += [self._point(u, v) for u, v in zip(turns, vecs, strict=True)]
            self.vectors.upsert(points)
        if episodes:
            srcs = self.sql.sources([u.id for u in episodes])
            members = {e for ids in srcs.values() for e in ids}
            have = self.vectors.fetch(sorted(members))
            for u in episodes:
                vs = [have[e] for e in srcs.get(u.id, []) if e in have]
                if not vs:  # member turns not indexed yet: embed the episode text itself
                    vs = [self.embedder.embed([inputs[u.id]])[0]]
                points.append(self._point(u, normalize_rows(np.mean(np.stack(vs), axis=0))[0]))
            self.vectors.upsert(points[len(turns) :])
        if self.lexical is not None:
            ctx = self.contexts(units)
            self.lexical.upsert([self.lexical_doc(u, ctx.get(u.id)) for u in units])
        self.sql.set_index_state([p.id for p in points], "indexed")
        return len(points)

    @staticmethod
    def _point(u: UnitRow, vec: np.ndarray) -> VectorPoint:
        return VectorPoint(id=u.id, vector=vec, tenant=u.tenant_id, user=u.user_id, level=u.level,
                           start=_posix(u.start_ts), end=_posix(u.end_ts), session=u.session_id, stream=u.stream_id)


def _denoisable(u: UnitRow) -> bool:
    """Chat turns and episodes are denoised; video units and consolidation products are not."""
    return u.level in (Level.TURN.value, Level.EPISODE.value) and u.stream_id is None \
        and not (u.meta or {}).get("scene")
