"""JSON shapes shared by the REST server and ``memsvc.client``: hits and records to and from JSON."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from memsvc._types import Level
from memsvc.models import Hit, MemoryRecord

__all__ = ["hit_from_json", "jsonable", "record_from_json", "record_to_json"]


def record_to_json(r: MemoryRecord) -> dict[str, Any]:
    """``MemoryRecord`` as JSON (ISO times); the inverse of ``record_from_json``."""
    return {
        "id": r.id, "kind": r.kind, "text": r.text, "user_id": r.user_id,
        "start_time": r.start_time.isoformat(), "end_time": r.end_time.isoformat(),
        "session_id": r.session_id, "stream_id": r.stream_id, "role": r.role, "name": r.name,
        "source_ids": list(r.source_ids), "metadata": dict(r.metadata), "producer": dict(r.producer),
    }


def _time(v: str) -> datetime:
    return datetime.fromisoformat(v.replace("Z", "+00:00"))


def record_from_json(d: dict[str, Any]) -> MemoryRecord:
    return MemoryRecord(
        id=d["id"], kind=d["kind"], text=d.get("text"), user_id=d["user_id"],
        start_time=_time(d["start_time"]), end_time=_time(d["end_time"]),
        session_id=d.get("session_id"), stream_id=d.get("stream_id"), role=d.get("role"), name=d.get("name"),
        source_ids=list(d.get("source_ids") or []), metadata=dict(d.get("metadata") or {}),
        producer=dict(d.get("producer") or {}),
    )


def hit_from_json(d: dict[str, Any]) -> Hit:
    """A ``Hit`` from ``Hit.to_dict()`` output."""
    try:
        level: Any = Level(d["level"])
    except ValueError:  # a level a newer server knows
        level = d["level"]
    return Hit(
        id=d["id"], text=d["text"], score=float(d["score"]), level=level,
        start_time=_time(d["start_time"]), end_time=_time(d["end_time"]),
        source_ids=list(d.get("source_ids") or []), user_id=d["user_id"],
        session_id=d.get("session_id"), stream_id=d.get("stream_id"), tokens=int(d.get("tokens") or 0),
        components={k: float(v) for k, v in (d.get("components") or {}).items()},
        metadata=dict(d.get("metadata") or {}), seq=d.get("seq"),
    )


def jsonable(value: Any) -> Any:
    """Arguments as JSON: datetimes to ISO-8601 (a naive one stays naive, and the server refuses it
    exactly as the embedded SDK would), numpy arrays to lists, tuples to lists."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # numpy arrays and scalars
        return tolist()
    return value
