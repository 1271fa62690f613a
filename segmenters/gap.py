"""Greedy online decoding shared by the gap-scoring segmenters (a template method).

    GapScoringSegmenter --> TilingSegmenter   (segmenters.tiling: TextTiling depth, no learning)
                        --> BoundarySegmenter (segmenters.boundary: learned boundary model, the default)

A subclass writes only ``gap_score``: how likely a boundary is after item ``j`` of a context (the open
episode plus up to ``lookahead`` items after the gap). This class walks the gaps left to right and
closes the open episode after item ``j`` when

* the next item comes more than ``max_gap_s`` seconds later (a pause closes an episode at once);
* the episode has reached ``max_size`` items;
* or the score exceeds ``threshold``, the episode has at least ``min_size`` items, the item before the
  gap is not a question left to the other speaker (``keep_qa``), and, with ``peak``, the score is not
  lower than the next gap's (non-maximum suppression: one cut per valley).

A gap is decided only once its whole lookahead has arrived (or the session is over), and scores see
only the open episode and the lookahead, so online and offline segmentation give the same cuts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from memsvc.segmenters.base import SegmentItem

from memsvc._types import Matrix
from memsvc.exceptions import ConfigError

__all__ = ["GapScoringSegmenter", "normalized"]


def normalized(items: Sequence[SegmentItem]) -> Matrix:
    """Stacked item embeddings, L2-normalised (zero vectors stay zero)."""
    emb = np.stack([np.asarray(it.embedding, dtype=np.float32).ravel() for it in items])
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return np.asarray(emb / np.maximum(norms, 1e-9), dtype=np.float32)


@dataclass
class GapScoringSegmenter:
    """Base of the online gap-scoring segmenters; subclasses implement ``gap_score``."""

    threshold: float | None = None
    """A gap whose score exceeds it is a boundary (subject to the rules above); None: the backend's."""
    min_size: int = 2
    """Fewest items in an episode closed by score (time gaps and session ends may close shorter ones)."""
    max_size: int = 24
    """An episode closes when it reaches this many items."""
    max_gap_s: float = 1800.0
    """A pause longer than this (seconds) between two items closes the episode."""
    lookahead: int | None = None
    """Items after a gap the score may look at; the segmenter holds back that many undecided items
    (one more with ``peak``). None: the backend's."""
    keep_qa: bool = True
    """Never cut right after a question (text ending in '?') when the next item is another speaker's answer."""
    peak: bool = True
    """Cut only at a local maximum of the score (compares with the next gap)."""
    name: str = "gap"

    def __post_init__(self) -> None:
        if self.threshold is None:
            self.threshold = self.default_threshold()
        if self.lookahead is None:
            self.lookahead = self.default_lookahead()
        if not 1 <= self.min_size <= self.max_size:
            raise ConfigError("need 1 <= min_size <= max_size")
        if self.max_gap_s <= 0:
            raise ConfigError("max_gap_s must be > 0")
        if not 1 <= self.lookahead <= 16:
            raise ConfigError("lookahead must be in [1, 16]")

    # -- what subclasses write --------------------------------------------------------------------------
    def default_threshold(self) -> float:
        """Threshold used when none is configured."""
        return 0.5

    def default_lookahead(self) -> int:
        """Lookahead used when none is configured."""
        return 3

    def gap_score(self, emb: Matrix, items: Sequence[SegmentItem], j: int) -> float:
        """Boundary score of the gap after item ``j`` of a context (``emb`` normalised, same order)."""
        raise NotImplementedError

    # -- decoding ---------------------------------------------------------------------------------------
    def split(self, items: Sequence[SegmentItem], final: bool = False) -> list[int]:
        n = len(items)
        threshold = self.default_threshold() if self.threshold is None else self.threshold
        lookahead = self.default_lookahead() if self.lookahead is None else self.lookahead
        if n == 0:
            return []
        emb = normalized(items)
        pause = [
            (items[g + 1].timestamp - items[g].timestamp).total_seconds() > self.max_gap_s for g in range(n - 1)
        ]
        # limit[g]: end (exclusive) of the stretch without a pause that item g belongs to
        limit = [n] * n
        for g in range(n - 2, -1, -1):
            limit[g] = g + 1 if pause[g] else limit[g + 1]
        sizes: list[int] = []
        start = 0
        g = 0
        while g < n - 1:
            length = g - start + 1
            if pause[g] or length >= self.max_size:
                sizes.append(length)
                start = g = g + 1
                continue
            need = g + 1 + lookahead + (1 if self.peak else 0)
            if not final and limit[g] == n and need > n:
                return sizes  # undecided: wait for more items
            cut = self._decide(emb, items, start, g, limit[g], lookahead, threshold)
            if cut is None:
                g += 1
                continue
            sizes.append(cut - start + 1)
            start = cut + 1
            g = max(g, cut) + 1
        if final and start < n:
            sizes.append(n - start)
        return sizes

    def _decide(
        self, emb: Matrix, items: Sequence[SegmentItem], start: int, g: int, limit: int, lookahead: int,
        threshold: float,
    ) -> int | None:
        """Where to cut when the gap after ``g`` is a boundary (None: no cut at this gap)."""
        if g - start + 1 < self.min_size or (self.keep_qa and self._question_to_other(items, g)):
            return None
        score = self._score(emb, items, start, g, limit, lookahead)
        if score <= threshold:
            return None
        if self.peak and g + 1 < limit - 1 and self._score(emb, items, start, g + 1, limit, lookahead) > score:
            return None
        end = min(g + 1 + lookahead, limit)
        cut = start + self.refine_cut(emb[start:end], items[start:end], g - start)
        return cut if start + self.min_size - 1 <= cut < end - 1 else g

    def refine_cut(self, emb: Matrix, items: Sequence[SegmentItem], j: int) -> int:
        """Move a decided cut within the context (index of the new last item); default: keep it."""
        return j

    def _score(
        self, emb: Matrix, items: Sequence[SegmentItem], start: int, g: int, limit: int, lookahead: int
    ) -> float:
        end = min(g + 1 + lookahead, limit)
        return self.gap_score(emb[start:end], items[start:end], g - start)

    @staticmethod
    def _question_to_other(items: Sequence[SegmentItem], g: int) -> bool:
        a, b = items[g], items[g + 1]
        if not a.text.rstrip().endswith("?"):
            return False
        return a.speaker is None or b.speaker is None or a.speaker != b.speaker
