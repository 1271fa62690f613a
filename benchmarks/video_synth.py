"""Synthetic but realistic camera streams with ground truth, for ``memsvc bench video`` and tests.

A stream is a sequence of scenes. Each scene is a (location, activity) pair; its frame embeddings are
drawn around a per-scene centroid (location + activity directions plus a shared component, as CLIP
image embeddings share one) with a slow random-walk drift and per-frame noise. Consecutive scenes
differ in activity and often share the location (the hard case: same room, new activity). Between
some scenes the camera is off (a time gap). A caption arrives every ``caption_every_s`` seconds from
templates with synonyms, with a small rate of captioner mistakes. Ground truth: scene boundaries (frame
indices), scene spans and labels, and time-anchored questions whose answer is a scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

__all__ = [
    "ACTIVITIES", "LOCATIONS", "Question", "Scene", "SyntheticStream", "VideoStreamConfig", "boundary_f1", "generate",
]

LOCATIONS = ["kitchen", "living room", "home office", "hallway", "bedroom", "garage", "garden", "dining room"]
ACTIVITIES: dict[str, list[str]] = {
    "door": ["opening the front door", "walking in through the front door", "opening the door"],
    "cook": ["cooking dinner on the stove", "frying vegetables in a pan", "stirring a pot of soup"],
    "dishes": ["washing dishes at the sink", "rinsing plates", "cleaning the dishes"],
    "read": ["reading a book", "reading a novel on the couch", "turning pages of a book"],
    "tv": ["watching television", "watching a show on TV", "sitting in front of the television"],
    "laptop": ["typing on a laptop", "working on a computer", "writing an email on a laptop"],
    "phone": ["talking on the phone", "making a phone call", "chatting on a mobile phone"],
    "eat": ["eating a meal at the table", "having lunch", "eating a sandwich"],
    "vacuum": ["vacuuming the floor", "cleaning the carpet with a vacuum", "vacuuming the rug"],
    "laundry": ["folding laundry", "folding clean clothes", "sorting the laundry"],
    "cat": ["feeding the cat", "playing with the cat", "petting the cat"],
    "exercise": ["doing push-ups", "exercising on a yoga mat", "stretching on the floor"],
}
SUBJECTS = ["a person", "someone", "a woman", "the user"]


@dataclass(frozen=True)
class VideoStreamConfig:
    """Generator knobs; times in seconds."""

    duration_s: float = 3600.0
    fps: float = 1.0
    dim: int = 512
    scene_min_s: float = 30.0
    scene_max_s: float = 300.0
    noise: float = 0.5
    """Per-frame noise norm relative to the unit scene signal (0.5: adjacent frames' cosine ~0.8)."""
    drift: float = 0.02
    """Random-walk step norm per frame inside a scene."""
    shared: float = 0.6
    activity_weight: float = 0.6
    """Weight of the activity direction against the location's: a new activity in the same room is a
    small visual change."""
    """Weight of the component every frame shares (CLIP-like anisotropy)."""
    same_location_p: float = 0.5
    gap_p: float = 0.1
    gap_min_s: float = 60.0
    gap_max_s: float = 900.0
    caption_every_s: float = 5.0
    caption_error_p: float = 0.05
    start: datetime = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)
    seed: int = 0


@dataclass(frozen=True)
class Scene:
    location: str
    activity: str
    first: int
    """Index of its first frame."""
    last: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Question:
    text: str
    kind: str
    """``around`` (clock time), ``minute`` (offset from the stream start), ``first_minutes``, ``last_time``."""
    answers: tuple[int, ...]
    """Indices of the scenes that answer it."""
    anchor: datetime | None = None


@dataclass
class SyntheticStream:
    config: VideoStreamConfig
    timestamps: list[datetime]
    embeddings: np.ndarray
    captions: list[str | None]
    scenes: list[Scene]
    questions: list[Question] = field(default_factory=list)

    @property
    def boundaries(self) -> list[int]:
        """Frame indices that start a scene (except the first)."""
        return [s.first for s in self.scenes[1:]]

    def scene_at(self, t: datetime) -> int | None:
        for k, s in enumerate(self.scenes):
            if s.start <= t <= s.end:
                return k
        return None


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def generate(cfg: VideoStreamConfig, n_questions: int = 60) -> SyntheticStream:
    """One stream with ground truth (deterministic for a seed)."""
    rng = np.random.default_rng(cfg.seed)
    shared = _unit(rng, cfg.dim)
    loc_vec = {loc: _unit(rng, cfg.dim) for loc in LOCATIONS}
    act_vec = {a: _unit(rng, cfg.dim) for a in ACTIVITIES}
    dt = 1.0 / cfg.fps
    n_total = int(cfg.duration_s * cfg.fps)
    ts: list[datetime] = []
    vecs: list[np.ndarray] = []
    caps: list[str | None] = []
    scenes: list[Scene] = []
    t = cfg.start
    loc, act = rng.choice(LOCATIONS), rng.choice(list(ACTIVITIES))
    next_caption = t
    while len(ts) < n_total:
        length = int(math.exp(rng.uniform(math.log(cfg.scene_min_s), math.log(cfg.scene_max_s))) * cfg.fps)
        length = max(1, min(length, n_total - len(ts)))
        centre = loc_vec[loc] + cfg.activity_weight * act_vec[act]
        centre = centre / np.linalg.norm(centre) + cfg.shared * shared
        walk = np.zeros(cfg.dim)
        first = len(ts)
        start = t
        for _ in range(length):
            walk += cfg.drift * rng.standard_normal(cfg.dim) / math.sqrt(cfg.dim)
            vecs.append(centre + walk + cfg.noise * rng.standard_normal(cfg.dim) / math.sqrt(cfg.dim))
            ts.append(t)
            if t >= next_caption:
                a = act if rng.random() >= cfg.caption_error_p else rng.choice(list(ACTIVITIES))
                caps.append(f"{rng.choice(SUBJECTS)} {rng.choice(ACTIVITIES[a])} in the {loc}")
                next_caption = t + timedelta(seconds=cfg.caption_every_s)
            else:
                caps.append(None)
            t += timedelta(seconds=dt)
        scenes.append(Scene(loc, act, first, len(ts) - 1, start, ts[-1]))
        if rng.random() < cfg.gap_p:
            t += timedelta(seconds=float(rng.uniform(cfg.gap_min_s, cfg.gap_max_s)))
            next_caption = t
        if rng.random() >= cfg.same_location_p:
            loc = rng.choice([x for x in LOCATIONS if x != loc])
        act = rng.choice([a for a in ACTIVITIES if a != act])
    emb = np.stack(vecs).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    stream = SyntheticStream(cfg, ts, emb, caps, scenes)
    stream.questions = _questions(stream, rng, n_questions)
    return stream


def _clock(t: datetime) -> str:
    return f"{t:%H:%M}"


def _questions(s: SyntheticStream, rng: np.random.Generator, n: int) -> list[Question]:
    qs: list[Question] = []
    t0, t1 = s.timestamps[0], s.timestamps[-1]
    minutes = int((t1 - t0).total_seconds() // 60)
    per = max(1, n // 4)
    # "around 12:30": a whole minute that falls inside a scene, clear of its edges
    tries = 0
    while sum(q.kind == "around" for q in qs) < per and tries < 50 * per:
        tries += 1
        anchor = t0.replace(second=0) + timedelta(minutes=int(rng.integers(0, max(1, minutes))))
        k = s.scene_at(anchor)
        if k is None or min(anchor - s.scenes[k].start, s.scenes[k].end - anchor) < timedelta(seconds=10):
            continue
        qs.append(Question(f"what was happening around {_clock(anchor)}?", "around", (k,), anchor))
    # "at minute 12 of the video"
    tries = 0
    while sum(q.kind == "minute" for q in qs) < per and tries < 50 * per:
        tries += 1
        m = int(rng.integers(0, max(1, minutes)))
        anchor = t0 + timedelta(minutes=m)
        k = s.scene_at(anchor)
        if k is None or min(anchor - s.scenes[k].start, s.scenes[k].end - anchor) < timedelta(seconds=10):
            continue
        qs.append(Question(f"what did the camera show at minute {m} of the video?", "minute", (k,), anchor))
    # "in the first N minutes": every scene overlapping the window answers
    for m in (2, 5, 10, 15, 30)[: max(1, per // 4)]:
        end = t0 + timedelta(minutes=m)
        ans = tuple(k for k, sc in enumerate(s.scenes) if sc.start <= end)
        qs.append(Question(f"what happened in the first {m} minutes?", "first_minutes", ans, end))
    # "the last time <activity>": the latest scene of that activity
    phrases = {"door": "the last time the door opened", "cook": "the last time I was cooking",
               "dishes": "the last time someone washed the dishes", "read": "the last time I read a book",
               "tv": "the last time the TV was on", "laptop": "the last time I used the laptop",
               "phone": "the last time I was on the phone", "eat": "the last time I ate",
               "vacuum": "the last time the floor was vacuumed", "laundry": "the last time I folded laundry",
               "cat": "the last time the cat was fed", "exercise": "the last time I exercised"}
    for act, text in phrases.items():
        ks = [k for k, sc in enumerate(s.scenes) if sc.activity == act]
        if ks and sum(q.kind == "last_time" for q in qs) < per:
            qs.append(Question(f"when was {text}?", "last_time", (ks[-1],), None))
    return qs


def boundary_f1(pred: list[int], gold: list[int], tolerance: int = 2) -> dict[str, float]:
    """Precision/recall/F1 of cut positions, a prediction within ``tolerance`` frames of an unmatched
    gold cut counting as a hit (greedy one-to-one matching in order)."""
    gold_left = sorted(gold)
    used = [False] * len(gold_left)
    tp = 0
    for p in sorted(pred):
        best, best_d = -1, tolerance + 1
        for j, g in enumerate(gold_left):
            if not used[j] and abs(g - p) < best_d:
                best, best_d = j, abs(g - p)
        if best >= 0:
            used[best] = True
            tp += 1
    prec = tp / len(pred) if pred else (1.0 if not gold else 0.0)
    rec = tp / len(gold) if gold else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(f1, 4)}
