"""Text embedder contract.

    Embedder --> SentenceTransformerEmbedder (default: packaged all-MiniLM-L6-v2)
             --> HashingEmbedder (deterministic, no model: tests and wiring)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from memsvc._types import Matrix

__all__ = ["Embedder"]


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of shape (len(texts), dim)."""

    name: str
    """Identifies the model; recorded on every unit it embeds."""
    version: str
    """Changes whenever the same name would produce different vectors."""
    dim: int

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Embed a batch of texts; an empty batch gives shape (0, dim)."""
        ...
