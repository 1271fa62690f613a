"""Compression of an open scene into a bounded memory (MovieChat-style) and caption merging.

    SceneAccumulator: the long-term record of one scene as it grows, O(buffer + captions) in size
        segments   contiguous runs of frames, each kept as (sum of unit vectors, count, time span,
                   representative frame); when more than ``buffer`` exist, the most similar adjacent
                   pair is averaged into one (MovieChat's short-term -> long-term consolidation)
        captions   distinct captions (near-duplicates by text-vector cosine merged) with counts
"""

from __future__ import annotations

import base64
import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memsvc._types import Vector
from memsvc.tokens import count_tokens

__all__ = ["Caption", "SceneAccumulator", "Segment", "merge_adjacent"]

_SPACE = re.compile(r"\s+")


def _b64(v: np.ndarray | None) -> str | None:
    return None if v is None else base64.b64encode(np.asarray(v, dtype=np.float32).tobytes()).decode()


def _unb64(s: str | None) -> np.ndarray | None:
    return None if s is None else np.frombuffer(base64.b64decode(s), dtype=np.float32).copy()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return 0.0 if na == 0 or nb == 0 else float(a @ b) / (na * nb)


@dataclass
class Segment:
    """A run of adjacent frames merged into one representative vector."""

    total: Vector
    """Sum of the members' unit vectors (the mean's direction)."""
    n: int
    t0: float
    t1: float
    rep_id: str
    """The member frame closest to the mean, as far as merging could tell (its event id)."""
    rep_vec: Vector
    _mean: Vector | None = field(default=None, repr=False, compare=False)

    def mean(self) -> Vector:
        if self._mean is None:
            norm = float(np.linalg.norm(self.total))
            self._mean = self.total / norm if norm > 0 else self.total
        return self._mean

    def merged(self, other: Segment) -> Segment:
        total = self.total + other.total
        mine, theirs = _cos(self.rep_vec, total), _cos(other.rep_vec, total)
        rep_id, rep_vec = (self.rep_id, self.rep_vec) if mine >= theirs else (other.rep_id, other.rep_vec)
        return Segment(total, self.n + other.n, min(self.t0, other.t0), max(self.t1, other.t1), rep_id, rep_vec)

    def to_json(self) -> dict[str, Any]:
        return {"total": _b64(self.total), "n": self.n, "t0": self.t0, "t1": self.t1, "rep_id": self.rep_id,
                "rep_vec": _b64(self.rep_vec)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Segment:
        return cls(_unb64(d["total"]), d["n"], d["t0"], d["t1"], d["rep_id"], _unb64(d["rep_vec"]))  # type: ignore[arg-type]


def _sim(a: Segment, b: Segment) -> float:
    return float(a.mean() @ b.mean())


def merge_adjacent(segments: list[Segment], target: int, sims: list[float] | None = None) -> list[Segment]:
    """Average the most similar adjacent pair until ``target`` segments remain (ties: earliest).

    ``sims`` (adjacent similarities, kept in step when given) avoids recomputing them."""
    segs = list(segments)
    sims = [_sim(segs[i], segs[i + 1]) for i in range(len(segs) - 1)] if sims is None else sims
    while len(segs) > max(target, 1):
        i = max(range(len(sims)), key=sims.__getitem__)
        segs[i : i + 2] = [segs[i].merged(segs[i + 1])]
        del sims[i]
        if i > 0:
            sims[i - 1] = _sim(segs[i - 1], segs[i])
        if i < len(sims):
            sims[i] = _sim(segs[i], segs[i + 1])
    return segs


@dataclass
class Caption:
    text: str
    count: int
    first: float
    vec: Vector


@dataclass
class SceneAccumulator:
    """One scene's compressed record (see the module doc)."""

    unit_id: str
    t0: float | None = None
    t1: float | None = None
    frames: int = 0
    segments: list[Segment] = field(default_factory=list)
    captions: list[Caption] = field(default_factory=list)
    _sims: list[float] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        segs = self.segments
        self._sims = [_sim(segs[i], segs[i + 1]) for i in range(len(segs) - 1)]

    def add(self, frame_id: str, ts: float, vec: Vector | None, caption: str | None, cap_vec: Vector | None,
            buffer: int, max_captions: int, dedup: float) -> None:
        """Append one frame (in time order)."""
        self.frames += 1
        self.t0 = ts if self.t0 is None else min(self.t0, ts)
        self.t1 = ts if self.t1 is None else max(self.t1, ts)
        if vec is not None:
            seg = Segment(vec.astype(np.float32).copy(), 1, ts, ts, frame_id, vec)
            if self.segments:
                self._sims.append(_sim(self.segments[-1], seg))
            self.segments.append(seg)
            if len(self.segments) > buffer:
                self.segments = merge_adjacent(self.segments, buffer, self._sims)
        if caption and cap_vec is not None:
            self._add_caption(_SPACE.sub(" ", caption.strip()), ts, cap_vec, max_captions, dedup)

    def _add_caption(self, text: str, ts: float, vec: Vector, max_captions: int, dedup: float) -> None:
        key = text.lower()
        best, best_sim = -1, -2.0
        for i, c in enumerate(self.captions):
            if c.text.lower() == key:
                best, best_sim = i, 2.0
                break
            s = float(c.vec @ vec)
            if s > best_sim:
                best, best_sim = i, s
        if best >= 0 and (best_sim >= dedup or len(self.captions) >= max_captions):
            self.captions[best].count += 1
            return
        self.captions.append(Caption(text, 1, ts, vec))

    def target_reps(self, frames_per_rep: int, max_reps: int) -> int:
        return max(1, min(max_reps, math.ceil(self.frames / max(frames_per_rep, 1))))

    def representatives(self, frames_per_rep: int, max_reps: int) -> list[Segment]:
        """The scene's representative vectors (without changing the accumulator)."""
        if not self.segments:
            return []
        return merge_adjacent(self.segments, self.target_reps(frames_per_rep, max_reps), list(self._sims))

    def caption_vector(self) -> Vector | None:
        """Count-weighted centroid of the caption vectors (the scene's text-space vector)."""
        if not self.captions:
            return None
        v = np.sum([c.vec * c.count for c in self.captions], axis=0)
        n = float(np.linalg.norm(v))
        return (v / n).astype(np.float32) if n > 0 else None

    def text(self, stream: str, budget_tokens: int) -> str:
        """Merged captions: the most frequent first until the budget, then shown in time order."""
        head = f"[{stream}] "
        if not self.captions:
            return head + f"(no captions; {self.frames} frames)"
        chosen: list[Caption] = []
        used = count_tokens(head)
        for c in sorted(self.captions, key=lambda c: (-c.count, c.first)):
            label = c.text + (f" (x{c.count})" if c.count > 1 else "")
            cost = count_tokens(label + "; ")
            if chosen and used + cost > budget_tokens:
                continue
            chosen.append(c)
            used += cost
        chosen.sort(key=lambda c: c.first)
        return head + "; ".join(c.text + (f" (x{c.count})" if c.count > 1 else "") for c in chosen)

    def copy(self) -> SceneAccumulator:
        c = copy.copy(self)
        c.segments, c.captions, c._sims = list(self.segments), [copy.copy(x) for x in self.captions], list(self._sims)
        return c

    def to_json(self) -> dict[str, Any]:
        return {"unit_id": self.unit_id, "t0": self.t0, "t1": self.t1, "frames": self.frames,
                "segments": [s.to_json() for s in self.segments],
                "captions": [{"text": c.text, "count": c.count, "first": c.first, "vec": _b64(c.vec)}
                             for c in self.captions]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SceneAccumulator:
        return cls(d["unit_id"], d["t0"], d["t1"], d["frames"], [Segment.from_json(s) for s in d["segments"]],
                   [Caption(c["text"], c["count"], c["first"], _unb64(c["vec"])) for c in d["captions"]])  # type: ignore[arg-type]
