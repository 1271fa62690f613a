"""Segmenters: online/offline episode boundaries, chosen by name (``boundary`` is the default).

    Segmenter --> GapScoringSegmenter --> BoundarySegmenter (learned boundary model; default)
                                      --> TilingSegmenter  (TextTiling depth)
              --> SimilaritySegmenter (centroid rule)
              --> LLMSegmenter        (any LangChain chat model; falls back to the default)
              --> SurpriseSegmenter   (EM-LLM token surprise from a causal LM)
              --> TurnSegmenter       (one episode per turn: the per-turn baseline)
"""

from __future__ import annotations

from memsvc.registry import Registry
from memsvc.segmenters.base import Segmenter, SegmentItem, sizes_to_labels
from memsvc.segmenters.boundary import BoundaryModel, BoundarySegmenter
from memsvc.segmenters.gap import GapScoringSegmenter
from memsvc.segmenters.llm import LLMSegmenter
from memsvc.segmenters.similarity import SimilaritySegmenter
from memsvc.segmenters.surprise import SurpriseSegmenter
from memsvc.segmenters.tiling import TilingSegmenter
from memsvc.segmenters.turn import TurnSegmenter
from memsvc.segmenters.video import SceneSegmenter

SEGMENTERS: Registry[Segmenter] = Registry("segmenter")
SEGMENTERS.register("boundary")(BoundarySegmenter)
SEGMENTERS.register("tiling")(TilingSegmenter)
SEGMENTERS.register("similarity")(SimilaritySegmenter)
SEGMENTERS.register("llm")(LLMSegmenter)
SEGMENTERS.register("surprise")(SurpriseSegmenter)
SEGMENTERS.register("scene")(SceneSegmenter)
SEGMENTERS.register("turn")(TurnSegmenter)

__all__ = [
    "SEGMENTERS",
    "BoundaryModel",
    "BoundarySegmenter",
    "GapScoringSegmenter",
    "SceneSegmenter",
    "LLMSegmenter",
    "SegmentItem",
    "Segmenter",
    "SimilaritySegmenter",
    "SurpriseSegmenter",
    "TilingSegmenter",
    "TurnSegmenter",
    "sizes_to_labels",
]
