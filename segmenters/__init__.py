"""Segmenters: online/offline episode boundaries, chosen by name (``similarity`` is the default)."""

from __future__ import annotations

from memsvc.registry import Registry
from memsvc.segmenters.base import SegmentItem, Segmenter, sizes_to_labels
from memsvc.segmenters.similarity import SimilaritySegmenter

SEGMENTERS: Registry[Segmenter] = Registry("segmenter")
SEGMENTERS.register("similarity")(SimilaritySegmenter)
SEGMENTERS.register("scene")(lambda **kw: __import__("memsvc.segmenters.video", fromlist=["x"]).SceneSegmenter(**kw))

__all__ = ["SEGMENTERS", "SegmentItem", "Segmenter", "SimilaritySegmenter", "sizes_to_labels"]
