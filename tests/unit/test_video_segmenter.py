"""Scene segmenter: accuracy on synthetic streams, online == offline, bounded state, MovieChat merging."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memsvc.benchmarks.video_synth import VideoStreamConfig, boundary_f1, generate
from memsvc.exceptions import ConfigError
from memsvc.segmenters import SEGMENTERS
from memsvc.segmenters.video import SceneFrame, SceneSegmenter, SceneState
from memsvc.video.compress import SceneAccumulator, Segment, merge_adjacent


def _frames(stream) -> list[SceneFrame]:  # type: ignore[no-untyped-def]
    return [SceneFrame(v, None, t.timestamp()) for v, t in zip(stream.embeddings, stream.timestamps, strict=True)]


@pytest.mark.parametrize("seed", [1, 2])
def test_depth_f1_at_moderate_noise(seed: int) -> None:
    s = generate(VideoStreamConfig(duration_s=1800, noise=0.8, seed=seed), 0)
    seg = SceneSegmenter()
    st = SceneState()
    cuts = seg.push(st, _frames(s)) + seg.flush(st)
    assert boundary_f1(cuts, s.boundaries)["f1"] >= 0.9


def test_threshold_method_cuts_clean_streams() -> None:
    s = generate(VideoStreamConfig(duration_s=900, noise=0.2, seed=3, same_location_p=0.0), 0)
    seg = SceneSegmenter(method="threshold", threshold=0.3)
    st = SceneState()
    cuts = seg.push(st, _frames(s))
    assert boundary_f1(cuts, s.boundaries)["f1"] >= 0.9


@pytest.mark.parametrize("method", ["depth", "threshold"])
def test_chunked_with_saved_state_equals_one_shot(method: str) -> None:
    s = generate(VideoStreamConfig(duration_s=1200, noise=0.8, seed=4, gap_p=0.3), 0)
    frames = _frames(s)
    seg = SceneSegmenter(method=method)
    one = SceneState()
    whole = seg.push(one, frames)
    st = SceneState()
    parts: list[int] = []
    rng = np.random.default_rng(0)
    i = 0
    while i < len(frames):
        n = int(rng.integers(1, 90))
        parts += seg.push(st, frames[i : i + n])
        st = SceneState.from_json(json.loads(json.dumps(st.to_json())))  # persisted between calls
        i += n
    assert parts == whole
    assert seg.flush(st) == seg.flush(one)


def test_time_gap_always_cuts_and_state_stays_small() -> None:
    seg = SceneSegmenter(max_frames=10_000)
    st = SceneState()
    v = np.ones(64, dtype=np.float32)
    frames = [SceneFrame(v, None, float(t)) for t in range(5000)] + [SceneFrame(v, None, 6000.0 + t) for t in range(50)]
    cuts = seg.push(st, frames)
    assert cuts == [5000]
    assert SceneSegmenter(max_frames=1800).push(SceneState(), frames) == [1800, 3600, 5000]
    assert len(st.vis) <= 2 * seg.window + seg.climb + 2 and len(st.sims) <= 2 * seg.climb + seg.window + 2
    assert len(json.dumps(st.to_json())) < 20_000


def test_registry_and_bad_config() -> None:
    assert isinstance(SEGMENTERS.create("scene", window=2), SceneSegmenter)
    with pytest.raises(ConfigError):
        SceneSegmenter(method="magic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        SceneSegmenter(min_frames=0)


def test_split_contract() -> None:
    from datetime import UTC, datetime, timedelta

    from memsvc.segmenters import SegmentItem

    s = generate(VideoStreamConfig(duration_s=600, noise=0.5, seed=5), 0)
    items = [SegmentItem(v, s.timestamps[0] + timedelta(seconds=k)) for k, v in enumerate(s.embeddings)]
    sizes = SceneSegmenter().split(items, final=True)
    assert sum(sizes) == len(items)
    assert items[0].timestamp.tzinfo is UTC or datetime.now(UTC)


def test_merge_adjacent_keeps_most_distinct_runs() -> None:
    a, b = np.eye(8, dtype=np.float32)[0], np.eye(8, dtype=np.float32)[1]
    segs = [Segment(v.copy(), 1, float(t), float(t), f"f{t}", v) for t, v in enumerate([a, a, a, b, b])]
    out = merge_adjacent(segs, 2)
    assert [s.n for s in out] == [3, 2]
    assert np.allclose(out[0].mean(), a) and out[1].rep_id in ("f3", "f4")


def test_accumulator_is_bounded_and_merges_captions() -> None:
    acc = SceneAccumulator("s")
    rng = np.random.default_rng(0)
    cap = np.eye(4, dtype=np.float32)
    for t in range(10_000):
        v = rng.standard_normal(32).astype(np.float32)
        acc.add(f"f{t}", float(t), v / np.linalg.norm(v), "a cat" if t % 2 else "A  cat ", cap[0], 16, 12, 0.9)
    assert len(acc.segments) == 16 and acc.frames == 10_000
    assert len(acc.captions) == 1 and acc.captions[0].count == 10_000
    assert len(acc.representatives(300, 4)) == 4
    assert "a cat" in acc.text("cam", 50).lower()
