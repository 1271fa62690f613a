"""Embedders, chosen by name.

Text: ``sentence-transformers`` (default) or ``hashing``. Images (video frames): ``pixels`` or ``clip``;
``none`` means frames arrive as embeddings or captions only.
"""

from __future__ import annotations

from typing import Any

from memsvc.embedders.base import Embedder
from memsvc.embedders.fake import HashingEmbedder
from memsvc.embedders.image import ClipImageEmbedder, ImageEmbedder, PixelImageEmbedder
from memsvc.embedders.sentence_transformers import SentenceTransformerEmbedder
from memsvc.registry import Registry

EMBEDDERS: Registry[Embedder] = Registry("embedder")
EMBEDDERS.register("sentence-transformers")(SentenceTransformerEmbedder)
EMBEDDERS.register("hashing")(HashingEmbedder)

IMAGE_EMBEDDERS: Registry[ImageEmbedder | None] = Registry("image embedder")
IMAGE_EMBEDDERS.register("pixels")(PixelImageEmbedder)
IMAGE_EMBEDDERS.register("clip")(ClipImageEmbedder)


@IMAGE_EMBEDDERS.register("none")
def _no_image_embedder(**_: Any) -> None:
    return None


__all__ = [
    "EMBEDDERS",
    "IMAGE_EMBEDDERS",
    "ClipImageEmbedder",
    "Embedder",
    "HashingEmbedder",
    "ImageEmbedder",
    "PixelImageEmbedder",
    "SentenceTransformerEmbedder",
]
