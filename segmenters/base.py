"""Segmenter contract: group a stream of turns (or frames) into episodes.

    Segmenter --> SimilaritySegmenter (segmenters.similarity: centroid-similarity rule, the default)

One method serves online and offline use. ``split(items, final)`` gets the items of the episode that
is still open followed by the new ones, and returns the cut points it has decided: sizes of the
segments to close, in order. Items after the last cut stay open (the caller may feed more later).
With ``final=True`` (session end) everything closes. Feeding a dialogue in pieces must give the same
cuts as feeding it whole, so a segmenter decides a cut only from what it has seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from memsvc._types import Vector

__all__ = ["SegmentItem", "Segmenter", "sizes_to_labels"]


@dataclass(frozen=True, slots=True)
class SegmentItem:
    """One unit to segment: a turn (text, speaker) or a frame (embedding only)."""

    embedding: Vector
    timestamp: datetime
    text: str = ""
    speaker: str | None = None


@runtime_checkable
class Segmenter(Protocol):
    """Decides episode boundaries."""

    name: str

    def split(self, items: Sequence[SegmentItem], final: bool = False) -> list[int]:
        """Sizes of the leading segments of ``items`` that are closed now (sum <= len(items);
        == len(items) when ``final``)."""
        ...


def sizes_to_labels(sizes: Sequence[int]) -> list[int]:
    """Segment sizes -> per-item labels, 1 on the last item of each segment (the benchmark format)."""
    labels: list[int] = []
    for s in sizes:
        labels.extend([0] * (s - 1) + [1])
    return labels
