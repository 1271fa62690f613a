"""Segmenters: online == offline, time gaps, max length, registry, the packaged boundary model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from memsvc.benchmarks.segmentation import segment_online
from memsvc.exceptions import ConfigError
from memsvc.segmenters import (
    SEGMENTERS,
    BoundaryModel,
    BoundarySegmenter,
    Segmenter,
    SegmentItem,
    TilingSegmenter,
    sizes_to_labels,
)
from memsvc.segmenters.boundary import default_model_path
from memsvc.segmenters.features import FEATURE_NAMES, gap_features

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
TOPICS = [
    ["I adopted a puppy last week.", "What breed is the puppy?", "A beagle, he is very playful.",
     "Beagles need long walks every day."],
    ["Did you watch the football match?", "Yes, our team scored twice.", "The goalkeeper was amazing.",
     "I hope they win the league."],
    ["I'm baking bread tonight.", "Do you use sourdough starter?", "Yes, my starter is three years old.",
     "Fresh bread smells wonderful."],
]


def synthetic_items(n_topics: int = 6, seed: int = 0, dim: int = 32) -> list[SegmentItem]:
    """Turns drawn around a few topic directions (precomputed-vector stand-ins for MiniLM)."""
    rng = np.random.default_rng(seed)
    items: list[SegmentItem] = []
    t = T0
    for k in range(n_topics):
        centre = rng.normal(size=dim)
        for _i in range(int(rng.integers(2, 7))):
            v = centre + 0.9 * rng.normal(size=dim)
            text = f"turn {len(items)} about topic {k}" + ("?" if rng.random() < 0.2 else ".")
            items.append(SegmentItem(v.astype(np.float32), t, text, "A" if len(items) % 2 else "B"))
            t += timedelta(seconds=30)
    return items


def gap_backends() -> list[Segmenter]:
    return [
        BoundarySegmenter(),
        BoundarySegmenter(peak=False, keep_qa=False, min_size=1),
        TilingSegmenter(),
        TilingSegmenter(window=3, threshold=0.05, peak=False),
    ]


@pytest.mark.parametrize("seg", gap_backends(), ids=lambda s: f"{s.name}")
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("step", [1, 2, 5])
def test_online_equals_offline(seg: Segmenter, seed: int, step: int) -> None:
    items = synthetic_items(seed=seed)
    offline = seg.split(items, final=True)
    assert sum(offline) == len(items)
    assert segment_online(seg, items, step=step) == offline


def test_online_equals_offline_on_real_embeddings(minilm) -> None:  # type: ignore[no-untyped-def]
    texts = [t for topic in TOPICS for t in topic] * 2
    vecs = minilm.embed(texts)
    items = [SegmentItem(v, T0 + timedelta(seconds=10 * i), t, "A" if i % 2 else "B")
             for i, (v, t) in enumerate(zip(vecs, texts, strict=True))]
    seg = BoundarySegmenter()
    offline = seg.split(items, final=True)
    assert segment_online(seg, items) == offline
    assert 2 <= len(offline) <= 10  # no explosion of tiny episodes, and not one blob


def test_time_gap_closes_at_once() -> None:
    items = synthetic_items(n_topics=1, seed=1)[:3]
    later = SegmentItem(items[0].embedding, items[-1].timestamp + timedelta(hours=3), "back again", "A")
    for seg in gap_backends():
        # the pause closes the episode without waiting for more items after it
        assert sum(seg.split([*items, later], final=False)) == 3


def test_max_size_closes() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=16).astype(np.float32)
    items = [SegmentItem(v, T0 + timedelta(seconds=i), "same thing again.", "A") for i in range(25)]
    for seg in (BoundarySegmenter(max_size=6), TilingSegmenter(max_size=6)):
        sizes = seg.split(items, final=True)
        assert max(sizes) <= 6 and sum(sizes) == 25
        assert sizes[:4] == [6, 6, 6, 6]


def test_question_is_kept_with_its_answer() -> None:
    items = synthetic_items(seed=2)
    seg = BoundarySegmenter(threshold=0.0, peak=False, min_size=1)  # cut everywhere it may
    sizes = seg.split(items, final=True)
    ends = np.cumsum(sizes)[:-1] - 1
    for e in ends:
        assert not items[e].text.endswith("?")


def test_empty_and_single() -> None:
    for seg in gap_backends():
        assert seg.split([], final=True) == []
        one = synthetic_items(n_topics=1)[:1]
        assert seg.split(one, final=False) == []
        assert seg.split(one, final=True) == [1]


def test_frames_without_text_use_depth() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=64), rng.normal(size=64)
    vecs = [a + 0.05 * rng.normal(size=64) for _ in range(6)] + [b + 0.05 * rng.normal(size=64) for _ in range(6)]
    items = [SegmentItem(v.astype(np.float32), T0 + timedelta(seconds=i)) for i, v in enumerate(vecs)]
    assert BoundarySegmenter().split(items, final=True) == [6, 6]


def test_registry_and_bad_names() -> None:
    assert {"boundary", "tiling", "similarity", "llm", "surprise"} <= set(SEGMENTERS.names())
    assert isinstance(SEGMENTERS.create("boundary"), BoundarySegmenter)
    assert isinstance(SEGMENTERS.create("memsvc.segmenters.tiling.TilingSegmenter"), TilingSegmenter)
    for bad in ("nope", "memsvc.segmenters.Nope", "no_such_module.Thing"):
        with pytest.raises(ConfigError):
            SEGMENTERS.create(bad)
    with pytest.raises(ConfigError):
        SEGMENTERS.create("boundary", min_size=5, max_size=2)
    with pytest.raises(ConfigError):
        SEGMENTERS.create("boundary", lookahead=7)  # the model was trained with another lookahead
    with pytest.raises(ConfigError):
        SEGMENTERS.create("boundary", no_such_option=1)


def test_default_settings_use_the_boundary_segmenter() -> None:
    from memsvc.config import Settings

    assert Settings().segmenter.backend == "boundary"


def test_packaged_model_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = BoundaryModel.load(default_model_path())
    assert model.meta["features"] == list(FEATURE_NAMES)
    assert 0 < model.meta["threshold"] < 1
    assert default_model_path().stat().st_size < 50_000
    path = tmp_path / "m.npz"
    model.save(path)
    again = BoundaryModel.load(path)
    x = np.random.default_rng(0).normal(size=(5, len(FEATURE_NAMES)))
    np.testing.assert_allclose(again.predict(x), model.predict(x), rtol=1e-5)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(ConfigError):
        BoundaryModel.load(bad)


def test_features_see_only_the_context() -> None:
    items = synthetic_items(seed=4)
    emb = np.stack([i.embedding for i in items])
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    texts = [i.text for i in items]
    spk = [i.speaker for i in items]
    x = gap_features(emb[:6], texts[:6], spk[:6], 2, 3)
    assert x.shape == (len(FEATURE_NAMES),) and np.isfinite(x).all()
    # appending items beyond the context must not matter: the caller cuts the context
    y = gap_features(emb[:6].copy(), texts[:6], spk[:6], 2, 3)
    np.testing.assert_array_equal(x, y)


def test_skip_features_pair_same_speaker_turns() -> None:
    items = synthetic_items(seed=5)
    emb = np.stack([i.embedding for i in items])
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    texts = [i.text for i in items]
    spk = [i.speaker for i in items]
    names = list(FEATURE_NAMES)
    x = gap_features(emb[:6], texts[:6], spk[:6], 2, 3)
    assert x[names.index("skip_left")] == pytest.approx(float(emb[1] @ emb[3]), abs=1e-6)
    assert x[names.index("skip_right")] == pytest.approx(float(emb[2] @ emb[4]), abs=1e-6)
    # at the episode start and at the end of the context they fall back to the adjacent cosine
    first = gap_features(emb[:3], texts[:3], spk[:3], 0, 3)
    assert first[names.index("skip_left")] == pytest.approx(first[names.index("cos_w1")])
    assert first[names.index("skip_right")] == pytest.approx(float(emb[0] @ emb[2]), abs=1e-6)
    last = gap_features(emb[:4], texts[:4], spk[:4], 2, 3)
    assert last[names.index("skip_right")] == pytest.approx(last[names.index("cos_w1")])


def test_sizes_to_labels() -> None:
    assert sizes_to_labels([2, 1, 3]) == [0, 1, 1, 0, 0, 1]


def test_turn_segmenter_closes_every_item_alone() -> None:
    items = synthetic_items(seed=3)
    seg = SEGMENTERS.create("turn")
    assert seg.split(items, final=False) == [1] * len(items)
    assert seg.split([], final=True) == []
    assert segment_online(seg, items, step=3) == seg.split(items, final=True)
    assert sizes_to_labels(seg.split(items, final=True)) == [1] * len(items)
