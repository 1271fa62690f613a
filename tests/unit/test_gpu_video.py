"""DyCoke temporal token merging over [frames, tokens, dim]."""

from __future__ import annotations

import math

import pytest
import torch

from memsvc.exceptions import ConfigError  # noqa: E402
from memsvc.gpu.video import dycoke_merge  # noqa: E402


@pytest.mark.parametrize(("frames", "window", "ratio"), [(8, 4, 0.7), (10, 4, 0.7), (6, 3, 0.5), (5, 1, 0.9)])
def test_shapes_and_keep_ratio(frames: int, window: int, ratio: float) -> None:
    n, d = 36, 16
    out = dycoke_merge(torch.randn(frames, n, d), window=window, prune_ratio=ratio)
    anchors = math.ceil(frames / window)
    keep = math.ceil((1 - ratio) * n)
    expected = anchors * n + (frames - anchors) * keep
    assert out.tokens.shape == (expected, d)
    assert out.frame_index.shape == out.token_index.shape == (expected,)
    assert out.keep_ratio == pytest.approx(expected / (frames * n))
    assert bool((out.frame_index[1:] >= out.frame_index[:-1]).all())  # temporal order
    assert [t.shape[0] for t in out.per_frame()] == [n if f % window == 0 else keep for f in range(frames)]


def test_keeps_the_tokens_that_changed() -> None:
    base = torch.randn(1, 20, 8).repeat(4, 1, 1)
    moved = [3, 11]
    base[1, moved] = torch.randn(2, 8)  # frame 2 differs from frame 1 at two positions
    out = dycoke_merge(base, window=4, prune_ratio=0.9)  # keep 2 tokens per non-anchor frame
    assert out.token_index[out.frame_index == 1].tolist() == moved
    assert torch.equal(out.per_frame()[0], base[0])


def test_bad_input() -> None:
    with pytest.raises(ConfigError):
        dycoke_merge(torch.randn(4, 8))
    with pytest.raises(ConfigError):
        dycoke_merge(torch.randn(4, 8, 2), prune_ratio=1.0)
