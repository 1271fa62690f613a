"""TextTiling / SceneTilling depth scoring, online: the unlearned reference of the gap segmenters.

Hearst, "TextTiling: Segmenting Text into Multi-paragraph Subtopic Passages" (1997); the same rule
over frame features is VideoLLaMB's SceneTilling. The score of a gap is its depth on the curve of
cosines between adjacent blocks of ``window`` items: the rise to the nearest peak on the left plus
the rise to the nearest peak on the right. Offline TextTiling thresholds depth at mean + 0.5 std over
the whole text; online that statistic is not known yet, so the threshold is absolute (calibrated on
the dialogue dev sets: MiniLM turn embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memsvc.segmenters.base import SegmentItem
from memsvc.segmenters.features import depth_at, similarity_curve
from memsvc.segmenters.gap import GapScoringSegmenter

from memsvc._types import Matrix
from memsvc.exceptions import ConfigError

__all__ = ["TilingSegmenter"]


@dataclass
class TilingSegmenter(GapScoringSegmenter):
    """Cuts where the depth of the block-similarity curve exceeds ``threshold``."""

    window: int = 2
    """Items per block on each side of a gap."""
    name: str = "tiling"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window < 1:
            raise ConfigError("window must be >= 1")

    def default_threshold(self) -> float:
        return 0.2

    def gap_score(self, emb: Matrix, items: Sequence[SegmentItem], j: int) -> float:
        return depth_at(similarity_curve(emb, self.window), j)
