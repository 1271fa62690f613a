"""Text embedders, chosen by name: ``sentence-transformers`` (default) or ``hashing``."""

from __future__ import annotations

from memsvc.embedders.base import Embedder
from memsvc.embedders.fake import HashingEmbedder
from memsvc.embedders.sentence_transformers import SentenceTransformerEmbedder
from memsvc.registry import Registry

EMBEDDERS: Registry[Embedder] = Registry("embedder")
EMBEDDERS.register("sentence-transformers")(SentenceTransformerEmbedder)
EMBEDDERS.register("hashing")(HashingEmbedder)

__all__ = ["EMBEDDERS", "Embedder", "HashingEmbedder", "SentenceTransformerEmbedder"]
