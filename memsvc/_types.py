"""Type aliases and small value types shared across memsvc."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NewType

import numpy as np
from numpy.typing import NDArray

EventId = NewType("EventId", str)
UnitId = NewType("UnitId", str)
Vector = NDArray[np.float32]
Matrix = NDArray[np.float32]
Metadata = dict[str, Any]


class Level(StrEnum):
    """Granularity of a memory unit, finest first."""

    TURN = "turn"
    """One chat turn (or one caption/frame event)."""
    EPISODE = "episode"
    """A topically coherent run of turns, or a video scene."""
    SUMMARY = "summary"
    """A summary derived from one or more episodes."""
    SEMANTIC = "semantic"
    """A consolidated fact or per-user/day/topic memory derived from summaries or episodes."""


class EventKind(StrEnum):
    """What produced an event."""

    TURN = "turn"
    FRAME = "frame"


class IndexState(StrEnum):
    """Where a unit stands between the SQL truth and the vector index."""

    PENDING = "pending"
    """Written to SQL, vector not yet confirmed in the index."""
    INDEXED = "indexed"
    """Vector is in the index and matches the SQL row."""
    STALE = "stale"
    """Vector exists but was built from an older text or embedder; must be re-indexed."""
    NONE = "none"
    """Not indexed on purpose (e.g. an open episode too short to index)."""
