"""Reading video memory: frame-space candidates for search, and time-anchored questions.

``video_candidates`` adds scenes found through the frame index when the image embedder shares its
space with text (CLIP): a text query then reaches frames directly, not only through their captions.
Both ranked lists are fused by reciprocal rank (k = 60); a hit's ``components`` keep ``dense`` and
``frame`` similarities.

``parse_time_query`` splits a question into its content and a time constraint (the MRAG split):

    "what happened around 12:30"            anchor 12:30 on the stream's day, window +-5 min
    "at 14:05" / "at 2:05 pm"               anchor, window +-2 min
    "at minute 12 of the video", "12 minutes in"   anchor = stream start + 12 min
    "in the first five minutes"             range [start, start + 5 min]
    "in the last 10 minutes"                range [end - 10 min, end]
    "between 12:10 and 12:20"               range
    "the last time the door opened"         order = latest (the most recent relevant scene)
    "the first time ..."                    order = earliest

``video_search`` answers such a question over one user's scenes with ``MemoryService.search`` and the
time constraint: anchored questions rank the scenes in the window by distance to the anchor (a scene
containing it first), "last/first time" questions keep the relevant scenes (score within ``keep`` of
the best) and pick the latest/earliest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from memsvc._types import Level
from memsvc.models import Hit
from memsvc.stores import Scope, VectorFilter
from memsvc.video.frames import scene_of

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["TimeQuery", "parse_time_query", "video_candidates", "video_search"]

_RRF_K = 60
_NUMBERS: dict[str, float] = {w: float(i) for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"])}
_NUMBERS.update({"thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
                 "a": 1, "an": 1, "half an": 0.5, "a couple of": 2, "a few": 3})
_NUM = r"(\d+(?:\.\d+)?|half an|a couple of|a few|an?|forty-five|[a-z]+)"
_UNIT = r"(seconds?|secs?|minutes?|mins?|hours?|hrs?)"
_OF_VIDEO = r"(?:\s+(?:of|into) the (?:video|stream|recording|clip))?"
_CLOCK = r"(\d{1,2})[:.h](\d{2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?"


def video_candidates(svc: MemoryService, scope: Scope, query: str, flt: VectorFilter, hits: list[Hit]) -> list[Hit]:
    """``hits`` fused with scenes found in the frame index through a text-image embedder."""
    emb = svc.image_embedder
    if emb is None or not emb.shares_text_space:
        return hits
    store = svc.video.frames.store(emb.dim, create=False)
    if store is None:
        return hits
    found = store.search(scope, emb.embed_texts([query]), svc.settings.retrieval.candidates, flt)[0]
    best: dict[str, float] = {}
    for pid, sim in found:
        sid = scene_of(pid)
        best[sid] = max(best.get(sid, -1.0), sim)
    frame_hits = svc.retriever.hydrate(scope, sorted(best.items(), key=lambda x: (-x[1], x[0])), "frame")
    if not frame_hits:
        return hits
    fused: dict[str, Hit] = {}
    score: dict[str, float] = {}
    for ranked in (hits, frame_hits):
        for rank, h in enumerate(ranked):
            score[h.id] = score.get(h.id, 0.0) + 1.0 / (_RRF_K + rank + 1)
            if h.id in fused:
                fused[h.id].components.update(h.components)
            else:
                fused[h.id] = h
    out = list(fused.values())
    for h in out:
        h.score = score[h.id]
    out.sort(key=lambda h: (-h.score, h.id))
    return out


@dataclass(frozen=True)
class TimeQuery:
    """A question split into content and time constraint."""

    text: str
    """The question without its time phrase (may be empty: "what happened at 12:30")."""
    time_range: tuple[datetime | None, datetime | None] | None = None
    anchor: datetime | None = None
    order: Literal["latest", "earliest"] | None = None


def _number(s: str) -> float | None:
    s = s.lower().strip()
    try:
        return float(s)
    except ValueError:
        return _NUMBERS.get(s)


def _seconds(n: float, unit: str) -> float:
    u = unit.lower()
    return n * (3600 if u.startswith(("hour", "hr")) else 1 if u.startswith("sec") else 60)


def _clock(m: re.Match[str], day: datetime) -> datetime | None:
    h, mi, sec, ampm = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), (m.group(4) or "").replace(".", "")
    if ampm == "pm" and h < 12:
        h += 12
    if ampm == "am" and h == 12:
        h = 0
    if h > 23 or mi > 59 or sec > 59:
        return None
    return day.replace(hour=h, minute=mi, second=sec, microsecond=0)


def parse_time_query(
    query: str,
    *,
    stream_start: datetime | None = None,
    stream_end: datetime | None = None,
    now: datetime | None = None,
    tz: Any = UTC,
) -> TimeQuery:
    """Split ``query`` (see the module doc). Clock times are read in ``tz`` on the day of
    ``stream_start`` (else of ``now``); relative phrases need ``stream_start``/``stream_end``."""
    q = query.strip()
    ref = (stream_start or now or datetime.now(UTC)).astimezone(tz)
    end = stream_end or now
    low = q.lower()
    order: Literal["latest", "earliest"] | None = None
    if m := re.search(r"\b(?:when was )?(?:the )?(?:last|latest|most recent) time\b|\bmost recently\b|\blast seen\b", low):
        order = "latest"
    elif m := re.search(r"\b(?:when was )?(?:the )?first time\b", low):
        order = "earliest"
    if order is not None:
        q = (q[: m.start()] + " " + q[m.end() :]).strip()  # type: ignore[union-attr]
        low = q.lower()

    def strip(m: re.Match[str]) -> str:
        return (q[: m.start()] + " " + q[m.end() :]).strip()

    if m := re.search(r"\bbetween\s+(.+?)\s+and\s+(\d{1,2}[:.h]\d{2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)?)", low):
        ca, cb = re.fullmatch(_CLOCK, m.group(1).strip()), re.fullmatch(_CLOCK, m.group(2).strip())
        a, b = (_clock(ca, ref) if ca else None), (_clock(cb, ref) if cb else None)
        if a and b:
            return TimeQuery(strip(m), (min(a, b).astimezone(UTC), max(a, b).astimezone(UTC)), None, order)
    if stream_start is not None and (m := re.search(rf"\b(?:in|during|within)?\s*the first {_NUM}\s*{_UNIT}", low)):
        n = _number(m.group(1))
        if n is not None:
            return TimeQuery(strip(m), (stream_start, stream_start + timedelta(seconds=_seconds(n, m.group(2)))),
                             None, order)
    if end is not None and (m := re.search(rf"\b(?:in|during|within)?\s*the (?:last|past) {_NUM}\s*{_UNIT}", low)):
        n = _number(m.group(1))
        if n is not None:
            return TimeQuery(strip(m), (end - timedelta(seconds=_seconds(n, m.group(2))), end), None, order)
    if stream_start is not None and (
        (m := re.search(rf"\b(?:at|around|about|near)?\s*(?:the )?(second|minute|hour)\s+{_NUM}{_OF_VIDEO}", low))
        and _number(m.group(2)) is not None
    ):
        anchor = stream_start + timedelta(seconds=_seconds(_number(m.group(2)) or 0, m.group(1)))
        return TimeQuery(strip(m), (anchor - timedelta(minutes=2), anchor + timedelta(minutes=2)), anchor, order)
    if stream_start is not None and (m := re.search(rf"\b{_NUM}\s*{_UNIT}\s+(?:in|into)\b(?:\s+the (?:video|stream))?", low)):
        n = _number(m.group(1))
        if n is not None:
            anchor = stream_start + timedelta(seconds=_seconds(n, m.group(2)))
            return TimeQuery(strip(m), (anchor - timedelta(minutes=2), anchor + timedelta(minutes=2)), anchor, order)
    if m := re.search(rf"\b(around|about|near|approximately|at)\s+{_CLOCK}", low):
        t = _clock(re.search(_CLOCK, m.group(0)), ref)  # type: ignore[arg-type]
        if t is not None:
            half = timedelta(minutes=2 if m.group(1) == "at" else 5)
            t = t.astimezone(UTC)
            return TimeQuery(strip(m), (t - half, t + half), t, order)
    return TimeQuery(q, None, None, order)


_FILLER = re.compile(
    r"\b(what|whats|what's|was|were|is|are|did|does|do|the|a|an|happen|happened|happening|going on|on|camera|"
    r"show|shown|see|saw|seen|video|stream|i|me|my|there|when|where|of|in|at|time|last|first|doing|"
    r"recording|clip|it|that|this)\b|[?.!,]"
)


def _content(text: str) -> str:
    return " ".join(_FILLER.sub(" ", text.lower()).split())


def video_search(
    svc: MemoryService,
    query: str,
    user_id: str,
    stream_id: str | None = None,
    limit: int = 5,
    keep: float = 0.9,
    now: datetime | None = None,
) -> list[Hit]:
    """Scenes answering a time-anchored question, best first (see the module doc)."""
    scope = svc.scope(user_id)
    start, end = _stream_span(svc, scope, stream_id)
    tq = parse_time_query(query, stream_start=start, stream_end=end, now=now)
    content = _content(tq.text)
    if tq.time_range is not None:
        if content:
            hits = svc.search(tq.text, user_id, limit=200, time_range=tq.time_range, levels=[Level.EPISODE.value],
                              stream_id=stream_id)
        else:
            hits = _scenes_in_range(svc, scope, stream_id, tq.time_range)
        if tq.anchor is not None:
            a = tq.anchor

            def dist(h: Hit) -> float:
                if h.start_time <= a <= h.end_time:
                    return 0.0
                return min(abs((h.start_time - a).total_seconds()), abs((h.end_time - a).total_seconds()))

            hits.sort(key=lambda h: (dist(h), -h.score))
        elif not content:
            hits.sort(key=lambda h: h.start_time)
        return hits[:limit]
    if not content:
        return []
    hits = svc.search(tq.text, user_id, limit=200, levels=[Level.EPISODE.value], stream_id=stream_id)
    if tq.order is not None and hits:
        top = hits[0].score
        rel = [h for h in hits if h.score >= keep * top]
        rel.sort(key=lambda h: h.end_time, reverse=tq.order == "latest")
        return rel[:limit]
    return hits[:limit]


def _stream_span(svc: MemoryService, scope: Scope, stream_id: str | None) -> tuple[datetime | None, datetime | None]:
    from sqlalchemy import func, select

    from memsvc.stores.sql_schema import EventRow

    with svc.sql.session() as s:
        q = select(func.min(EventRow.ts), func.max(EventRow.ts)).where(
            EventRow.tenant_id == scope.tenant, EventRow.user_id == scope.user, EventRow.kind == "frame")
        if stream_id is not None:
            q = q.where(EventRow.stream_id == stream_id)
        lo, hi = s.execute(q).one()
    return _aware(lo), _aware(hi)


def _aware(t: datetime | None) -> datetime | None:
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=UTC))


def _scenes_in_range(svc: MemoryService, scope: Scope, stream_id: str | None,
                     tr: tuple[datetime | None, datetime | None]) -> list[Hit]:
    from sqlalchemy import select

    from memsvc.stores.sql_schema import UnitRow

    with svc.sql.session() as s:
        q = select(UnitRow.id).where(
            UnitRow.tenant_id == scope.tenant, UnitRow.user_id == scope.user, UnitRow.level == Level.EPISODE.value,
            UnitRow.stream_id.is_not(None), UnitRow.deleted_at.is_(None))
        if stream_id is not None:
            q = q.where(UnitRow.stream_id == stream_id)
        if tr[0] is not None:
            q = q.where(UnitRow.end_ts >= tr[0])
        if tr[1] is not None:
            q = q.where(UnitRow.start_ts <= tr[1])
        ids = list(s.scalars(q.limit(500)))
    return svc.retriever.hydrate(scope, [(i, 0.0) for i in ids], "time")
