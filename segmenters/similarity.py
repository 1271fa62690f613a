"""Centroid-similarity segmenter: the first, simple online rule.

A new item closes the open episode before it when the episode has at least ``min_size`` items and the
item's cosine similarity to the episode centroid falls below ``threshold``; a time gap over
``max_gap_s`` or an episode at ``max_size`` items also closes it. The rule looks only backwards, so
online and offline segmentation agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from memsvc.segmenters.base import SegmentItem

from memsvc.exceptions import ConfigError

__all__ = ["SimilaritySegmenter"]


@dataclass
class SimilaritySegmenter:
    """Closes an episode when a turn drifts away from its centroid, after a time gap, or at max size."""

    threshold: float = 0.15
    min_size: int = 2
    max_size: int = 16
    max_gap_s: float = 1800.0
    name: str = "similarity"

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ConfigError("threshold must be in [-1, 1]")
        if not 1 <= self.min_size <= self.max_size:
            raise ConfigError("need 1 <= min_size <= max_size")
        if self.max_gap_s <= 0:
            raise ConfigError("max_gap_s must be > 0")

    def split(self, items: Sequence[SegmentItem], final: bool = False) -> list[int]:
        sizes: list[int] = []
        start = 0
        centroid: np.ndarray | None = None
        for i, item in enumerate(items):
            v = np.asarray(item.embedding, dtype=np.float32)
            n = i - start
            if n > 0 and centroid is not None:
                gap = (item.timestamp - items[i - 1].timestamp).total_seconds()
                c = centroid / max(float(np.linalg.norm(centroid)), 1e-9)
                sim = float(c @ v) / max(float(np.linalg.norm(v)), 1e-9)
                if n >= self.max_size or gap > self.max_gap_s or (n >= self.min_size and sim < self.threshold):
                    sizes.append(n)
                    start, centroid = i, None
            centroid = v.copy() if centroid is None else centroid + v
        if final and start < len(items):
            sizes.append(len(items) - start)
        return sizes
