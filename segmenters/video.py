"""Online scene segmentation of frame streams.

    Segmenter --> SceneSegmenter (this module)

``SceneSegmenter`` cuts a stream of frames into scenes from three cues:

* visual depth (SceneTilling, after TextTiling): the similarity of the ``window`` frames left of each
  gap to the ``window`` frames right of it, ``s_g``; the depth ``d_g = lpeak + rpeak - 2 s_g`` where the
  peaks climb left/right from ``g`` (at most ``climb`` gaps) while the similarity keeps rising. A gap is a
  cut when its depth is a local maximum (``window`` gaps each side) and exceeds
  ``max(min_depth, mean + k_std * std)`` over the stream's depths so far (exponentially weighted);
* caption change: where both sides have captions (each frame carries its latest caption forward) and
  the two blocks' caption similarity ``c`` is below ``caption_change``, ``s_g`` is lowered by
  ``caption_weight * (caption_change - c) / caption_change`` (captioners reword within a scene, so
  only a clear change counts); a stream without frame features is segmented on captions alone;
* time gap: more than ``max_gap_s`` between two frames always cuts.

``method="threshold"`` is the HippoMM rule instead: a cut when ``1 - cos(f_{t-1}, f_t) > threshold``
(adjacent frames, no look-ahead). Scenes are at least ``min_frames`` long and at most ``max_frames``.

The segmenter is online and exact: ``push`` feeds frames in order and returns the cuts it can decide
(a depth cut needs ``2 * window + climb`` frames of right context), keeping everything else in a small
``SceneState`` (O(window + climb) vectors, never the scene). Feeding a stream in chunks, with the state
saved and loaded between them, gives the same cuts as feeding it at once. ``flush`` decides the rest
with truncated right context (stream end). ``split`` serves the generic ``Segmenter`` contract.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from memsvc._types import Vector
from memsvc.exceptions import ConfigError
from memsvc.segmenters.base import SegmentItem

__all__ = ["SceneFrame", "SceneSegmenter", "SceneState"]


@dataclass(frozen=True, slots=True)
class SceneFrame:
    """What the scene segmenter sees of one frame: a visual feature and/or a caption vector."""

    visual: Vector | None
    caption: Vector | None
    ts: float
    """POSIX seconds; frames arrive with non-decreasing times."""


def _unit(v: Vector | None) -> Vector | None:
    if v is None:
        return None
    a = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(a))
    return a / n if n > 0 else a


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return 1.0
    return float(a @ b) / (na * nb)


@dataclass
class SceneState:
    """Everything the segmenter remembers between calls (small and serialisable)."""

    n: int = 0
    """Frames seen (the next frame's index)."""
    run_start: int = 0
    """First frame after the last hard (time-gap) cut: blocks and climbs never cross it."""
    scene_start: int = 0
    """First frame of the open scene."""
    last_ts: float | None = None
    win0: int = 0
    vis: list[Vector | None] = field(default_factory=list)
    """Carried visual features of frames ``win0 ..``."""
    cap: list[Vector | None] = field(default_factory=list)
    """Carried caption vectors of frames ``win0 ..``."""
    sim0: int = 0
    sims: list[float] = field(default_factory=list)
    """Block similarities of gaps ``sim0 ..`` (gap g lies between frames g and g + 1)."""
    depth0: int = 0
    depths: list[float] = field(default_factory=list)
    next_decide: int = 0
    mu: float = 0.0
    var: float = 0.0
    count: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (vectors base64 float32)."""

        def enc(vs: list[Vector | None]) -> list[str | None]:
            return [None if v is None else base64.b64encode(np.asarray(v, np.float32).tobytes()).decode() for v in vs]

        d = {k: getattr(self, k) for k in ("n", "run_start", "scene_start", "last_ts", "win0", "sim0", "sims",
                                            "depth0", "depths", "next_decide", "mu", "var", "count")}
        d["vis"], d["cap"] = enc(self.vis), enc(self.cap)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SceneState:
        def dec(vs: list[str | None]) -> list[Vector | None]:
            return [None if v is None else np.frombuffer(base64.b64decode(v), dtype=np.float32).copy() for v in vs]

        st = cls(**{k: v for k, v in d.items() if k not in ("vis", "cap")})
        st.vis, st.cap = dec(d.get("vis", [])), dec(d.get("cap", []))
        st.sims, st.depths = [float(x) for x in st.sims], [float(x) for x in st.depths]
        return st


@dataclass
class SceneSegmenter:
    """Online scene boundaries from frame features, captions and time gaps (see the module doc)."""

    method: Literal["depth", "threshold"] = "depth"
    window: int = 3
    """Frames per block on each side of a gap (depth method)."""
    climb: int = 5
    """How many gaps the peaks may climb left/right."""
    k_std: float = 0.5
    """Depth threshold: mean + k_std * std of the depths seen so far."""
    min_depth: float = 0.12
    """Absolute floor on the depth threshold (a static stream has tiny depths only)."""
    stats_halflife: float = 600.0
    """Half-life, in gaps, of the running depth mean/variance."""
    threshold: float = 0.35
    """HippoMM method: cut when 1 - cos(previous frame, frame) exceeds this."""
    caption_weight: float = 0.15
    """How much a caption change lowers the block similarity (0 ignores captions)."""
    caption_change: float = 0.35
    """Caption similarity below which the captions count as changed (captioners reword a lot)."""
    max_gap_s: float = 10.0
    """A longer pause between two frames always starts a new scene."""
    min_frames: int = 3
    max_frames: int = 1800
    name: str = "scene"

    def __post_init__(self) -> None:
        if self.method not in ("depth", "threshold"):
            raise ConfigError("method must be 'depth' or 'threshold'")
        if self.window < 1 or self.climb < 1:
            raise ConfigError("window and climb must be >= 1")
        if not 0.0 <= self.caption_weight <= 1.0 or not 0.0 < self.caption_change <= 1.0:
            raise ConfigError("caption_weight must be in [0, 1] and caption_change in (0, 1]")
        if not 0.0 < self.threshold < 2.0:
            raise ConfigError("threshold must be in (0, 2)")
        if self.max_gap_s <= 0 or self.stats_halflife <= 0:
            raise ConfigError("max_gap_s and stats_halflife must be > 0")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ConfigError("need 1 <= min_frames <= max_frames")

    @property
    def lookahead(self) -> int:
        """Frames after a gap needed before it is decided (the ingest latency, in frames)."""
        return 1 if self.method == "threshold" else 2 * self.window + self.climb

    # -- online API ----------------------------------------------------------------------------------
    def push(self, state: SceneState, frames: Sequence[SceneFrame]) -> list[int]:
        """Feed frames in order; returns the indices of frames that start a new scene, decided now."""
        cuts: list[int] = []
        for f in frames:
            i = state.n
            if state.last_ts is not None and f.ts - state.last_ts > self.max_gap_s and i > state.run_start:
                cuts += self.flush(state)
                cuts.append(i)
                state.scene_start = state.run_start = state.win0 = state.sim0 = state.depth0 = i
                state.next_decide = i
                state.vis, state.cap, state.sims, state.depths = [], [], [], []
            prev_v = state.vis[-1] if state.vis else None
            prev_c = state.cap[-1] if state.cap else None
            v = _unit(f.visual)
            c = _unit(f.caption)
            state.vis.append(v if v is not None else prev_v)
            state.cap.append(c if c is not None else prev_c)
            state.n += 1
            state.last_ts = f.ts if state.last_ts is None else max(state.last_ts, f.ts)
            cuts += self._advance(state, final=False)
        return cuts

    def flush(self, state: SceneState) -> list[int]:
        """Decide every pending gap with the context there is (stream end or a hard cut)."""
        return self._advance(state, final=True)

    # -- generic Segmenter contract --------------------------------------------------------------------
    def split(self, items: Sequence[SegmentItem], final: bool = False) -> list[int]:
        st = SceneState()
        cuts = self.push(st, [SceneFrame(i.embedding, None, i.timestamp.timestamp()) for i in items])
        if final:
            cuts += self.flush(st)
        sizes, start = [], 0
        for c in cuts:
            sizes.append(c - start)
            start = c
        if final and start < len(items):
            sizes.append(len(items) - start)
        return sizes

    # -- internals -------------------------------------------------------------------------------------
    def _pair_sim(self, st: SceneState, left: tuple[int, int], right: tuple[int, int]) -> float:
        """Blended similarity of frames [left) vs [right) (global indices inside the window)."""
        a0, a1 = left[0] - st.win0, left[1] - st.win0
        b0, b1 = right[0] - st.win0, right[1] - st.win0
        lv = [v for v in st.vis[a0:a1] if v is not None]
        rv = [v for v in st.vis[b0:b1] if v is not None]
        lc = [c for c in st.cap[a0:a1] if c is not None]
        rc = [c for c in st.cap[b0:b1] if c is not None]
        vis = _cos(np.sum(lv, axis=0), np.sum(rv, axis=0)) if lv and rv else None
        cap = _cos(np.sum(lc, axis=0), np.sum(rc, axis=0)) if lc and rc else None
        if vis is None and cap is None:
            return 1.0
        if vis is None:
            return cap  # type: ignore[return-value]
        if cap is None or self.caption_weight == 0:
            return vis
        return vis - self.caption_weight * max(0.0, self.caption_change - cap) / self.caption_change

    def _advance(self, st: SceneState, final: bool) -> list[int]:
        if self.method == "threshold":
            return self._advance_threshold(st)
        w, L = self.window, self.climb
        last = st.n - 1
        # block similarities
        g = st.sim0 + len(st.sims)
        while g < last and (g + w <= last or final):
            st.sims.append(self._pair_sim(st, (max(st.run_start, g - w + 1), g + 1), (g + 1, min(last, g + w) + 1)))
            g += 1
        last_sim = st.sim0 + len(st.sims) - 1
        # depths
        g = st.depth0 + len(st.depths)
        alpha = 1.0 - 0.5 ** (1.0 / self.stats_halflife)
        while g <= last_sim and (g + L <= last_sim or final):
            s = st.sims[g - st.sim0]
            lpeak = s
            for j in range(g - 1, max(st.run_start, st.sim0, g - L) - 1, -1):
                sj = st.sims[j - st.sim0]
                if sj <= lpeak:
                    break
                lpeak = sj
            rpeak = s
            for j in range(g + 1, min(last_sim, g + L) + 1):
                sj = st.sims[j - st.sim0]
                if sj <= rpeak:
                    break
                rpeak = sj
            d = lpeak + rpeak - 2.0 * s
            st.depths.append(d)
            if st.count == 0:
                st.mu, st.var = d, 0.0
            else:
                delta = d - st.mu
                st.mu += alpha * delta
                st.var = (1.0 - alpha) * (st.var + alpha * delta * delta)
            st.count += 1
            g += 1
        last_depth = st.depth0 + len(st.depths) - 1
        # decisions
        cuts: list[int] = []
        g = st.next_decide
        while g <= last_depth and (g + w <= last_depth or final):
            d = st.depths[g - st.depth0]
            size = g + 1 - st.scene_start
            cut = size >= self.max_frames
            if not cut and size >= self.min_frames:
                thr = max(self.min_depth, st.mu + self.k_std * math.sqrt(max(st.var, 0.0)))
                lo, hi = max(st.depth0, st.run_start, g - w), min(last_depth, g + w)
                left = st.depths[lo - st.depth0 : g - st.depth0]
                right = st.depths[g + 1 - st.depth0 : hi + 1 - st.depth0]
                cut = d >= thr and all(d > x for x in left) and all(d >= x for x in right)
            if cut:
                cuts.append(g + 1)
                st.scene_start = g + 1
            g += 1
        st.next_decide = g
        self._trim(st)
        return cuts

    def _advance_threshold(self, st: SceneState) -> list[int]:
        i = st.n - 1
        cuts: list[int] = []
        if i > st.run_start and i >= st.next_decide + 1:
            g = i - 1
            sim = self._pair_sim(st, (g, g + 1), (g + 1, g + 2))
            size = g + 1 - st.scene_start
            if size >= self.max_frames or (size >= self.min_frames and 1.0 - sim > self.threshold):
                cuts.append(g + 1)
                st.scene_start = g + 1
            st.next_decide = g + 1
        keep = max(st.run_start, st.n - 1)
        drop = keep - st.win0
        if drop > 0:
            del st.vis[:drop], st.cap[:drop]
            st.win0 = keep
        return cuts

    def _trim(self, st: SceneState) -> None:
        w, L = self.window, self.climb
        next_sim = st.sim0 + len(st.sims)
        next_depth = st.depth0 + len(st.depths)
        keep_frames = max(st.run_start, next_sim - w + 1, st.win0)
        if keep_frames > st.win0:
            drop = keep_frames - st.win0
            del st.vis[:drop], st.cap[:drop]
            st.win0 = keep_frames
        keep_sims = max(st.sim0, next_depth - L)
        if keep_sims > st.sim0:
            del st.sims[: keep_sims - st.sim0]
            st.sim0 = keep_sims
        keep_depths = max(st.depth0, st.next_decide - w)
        if keep_depths > st.depth0:
            del st.depths[: keep_depths - st.depth0]
            st.depth0 = keep_depths
