"""Per-stream online state, persisted in SQL (``video_streams``) between ``add_frames`` calls.

    StreamState
        space, dim     which space scenes are segmented in: ``frame`` (client/image embeddings of size
                       ``dim``) or ``text`` (caption vectors, for streams sent without embeddings)
        seg            the scene segmenter's window (``SceneState``)
        scene          the open scene's compressed record (``SceneAccumulator``): decided members only
        pending        frames whose scene is not decided yet (at most the segmenter's look-ahead);
                       they are provisionally attached to the open scene so they are searchable now
        recent         dedup keys of the last frames (exact duplicate frames map to the first id)

Everything here is bounded: a 24-hour stream holds the same few kilobytes as a 1-minute one.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memsvc._types import Vector
from memsvc.segmenters.video import SceneState
from memsvc.video.compress import SceneAccumulator

__all__ = ["PendingFrame", "StreamState"]

VERSION = 1
RECENT = 64


def _b64(v: np.ndarray | None) -> str | None:
    return None if v is None else base64.b64encode(np.asarray(v, dtype=np.float32).tobytes()).decode()


def _unb64(s: str | None) -> np.ndarray | None:
    return None if s is None else np.frombuffer(base64.b64decode(s), dtype=np.float32).copy()


@dataclass
class PendingFrame:
    id: str
    idx: int
    """Position in the stream (0-based, in time order)."""
    ts: float
    vis: Vector | None
    caption: str | None
    cap_vec: Vector | None
    unit: str | None = None
    """The scene unit its provenance row currently points to."""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "idx": self.idx, "ts": self.ts, "vis": _b64(self.vis), "caption": self.caption,
                "cap_vec": _b64(self.cap_vec), "unit": self.unit}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PendingFrame:
        return cls(d["id"], d["idx"], d["ts"], _unb64(d["vis"]), d["caption"], _unb64(d["cap_vec"]), d["unit"])


@dataclass
class StreamState:
    space: str | None = None
    dim: int | None = None
    seg: SceneState = field(default_factory=SceneState)
    scene: SceneAccumulator | None = None
    pending: list[PendingFrame] = field(default_factory=list)
    open_points: int = 0
    """Representative points indexed for the open scene (stale ones are deleted when it shrinks)."""
    recent: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def remember(self, key: str, frame_id: str) -> None:
        self.recent[key] = frame_id
        while len(self.recent) > RECENT:
            self.recent.popitem(last=False)

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "space": self.space, "dim": self.dim, "seg": self.seg.to_json(),
                "scene": None if self.scene is None else self.scene.to_json(),
                "pending": [p.to_json() for p in self.pending], "open_points": self.open_points,
                "recent": list(self.recent.items())}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StreamState:
        return cls(
            space=d["space"], dim=d["dim"], seg=SceneState.from_json(d["seg"]),
            scene=None if d["scene"] is None else SceneAccumulator.from_json(d["scene"]),
            pending=[PendingFrame.from_json(p) for p in d["pending"]], open_points=d.get("open_points", 0),
            recent=OrderedDict((k, v) for k, v in d.get("recent", [])),
        )
