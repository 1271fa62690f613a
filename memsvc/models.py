"""Domain model: what clients send (events) and what memsvc gives back (hits, records).

    Event --> ChatEvent | VideoEvent         input, one per chat turn or video frame
    Unit                                     a stored memory at some Level with provenance
    Hit                                      a Unit returned by search, with score components
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memsvc._types import EventKind, Level, Metadata, Vector

__all__ = ["ChatEvent", "Hit", "MemoryRecord", "VideoEvent"]


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One chat turn as a client sends it (validated by the SDK before it is stored)."""

    user_id: str
    text: str
    role: str = "user"
    session_id: str | None = None
    timestamp: datetime | None = None
    name: str | None = None
    """Speaker name shown with the turn (``"Caroline"``); the role is used when absent."""
    client_id: str | None = None
    """Idempotency key: a second event with the same client id for this user is not stored again."""
    metadata: Metadata = field(default_factory=dict)

    kind = EventKind.TURN


@dataclass(frozen=True, slots=True)
class VideoEvent:
    """One video frame: an embedding from the client's vision encoder and/or a caption."""

    user_id: str
    stream_id: str
    timestamp: datetime
    embedding: Vector | None = None
    caption: str | None = None
    image_ref: str | None = None
    client_id: str | None = None
    metadata: Metadata = field(default_factory=dict)

    kind = EventKind.FRAME


@dataclass(slots=True)
class Hit:
    """A memory unit returned by ``Memory.search``.

    ``source_ids`` are the event ids (as returned by ``Memory.add``) the unit was built from;
    ``components`` holds the parts of the score (e.g. ``{"dense": 0.71}``) for explainability.
    """

    id: str
    text: str
    score: float
    level: Level
    start_time: datetime
    end_time: datetime
    source_ids: list[str]
    user_id: str
    session_id: str | None = None
    stream_id: str | None = None
    tokens: int = 0
    """cl100k_base tokens of this hit's text as packed by ``Memory.context`` (0 when not packed;
    shared date headers are not included)."""
    seq: int | None = None
    """Position of the unit's first event in the user's history (orders hits of one session)."""
    components: dict[str, float] = field(default_factory=dict)
    metadata: Metadata = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (ISO times)."""
        return {
            "id": self.id,
            "text": self.text,
            "score": self.score,
            "level": str(self.level),
            "start_time": self.start_time.isoformat(),
            "end_time": self.end_time.isoformat(),
            "source_ids": list(self.source_ids),
            "user_id": self.user_id,
            "session_id": self.session_id,
            "stream_id": self.stream_id,
            "tokens": self.tokens,
            "seq": self.seq,
            "components": dict(self.components),
            "metadata": dict(self.metadata),
        }


@dataclass(slots=True)
class MemoryRecord:
    """A stored event or unit as ``Memory.get`` / ``Memory.history`` return it."""

    id: str
    kind: str
    """``"event"`` or the unit level (``"turn"``, ``"episode"``, ...)."""
    text: str | None
    user_id: str
    start_time: datetime
    end_time: datetime
    session_id: str | None = None
    stream_id: str | None = None
    role: str | None = None
    name: str | None = None
    source_ids: list[str] = field(default_factory=list)
    metadata: Metadata = field(default_factory=dict)
    producer: dict[str, str] = field(default_factory=dict)
    """Which embedder/compressor (and versions) produced this unit."""
