"""Every turn is its own episode: the per-turn control for measuring what segmentation buys.

    Segmenter --> TurnSegmenter

It closes each item as soon as it arrives, so the store holds one-turn episodes beside the turns
(the same write and retrieval code as with any other segmenter; only the grouping differs).
``memsvc bench locomo --segmenter turn`` is the per-turn baseline of docs/SEGMENTATION_NOTES.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memsvc.segmenters.base import SegmentItem

__all__ = ["TurnSegmenter"]


@dataclass
class TurnSegmenter:
    """Closes one episode per item."""

    name: str = "turn"

    def split(self, items: Sequence[SegmentItem], final: bool = False) -> list[int]:
        return [1] * len(items)
