"""Segmenters: online/offline episode boundaries, chosen by name (``similarity`` is the default)."""

from __future__ import annotations

from memsvc.registry import Registry
from memsvc.segmenters.base import Segmenter, SegmentItem, sizes_to_labels
from memsvc.segmenters.similarity import SimilaritySegmenter
from memsvc.segmenters.video import SceneSegmenter

SEGMENTERS: Registry[Segmenter] = Registry("segmenter")
SEGMENTERS.register("similarity")(SimilaritySegmenter)
SEGMENTERS.register("scene")(SceneSegmenter)

__all__ = ["SEGMENTERS", "SegmentItem", "Segmenter", "SimilaritySegmenter", "sizes_to_labels"]
