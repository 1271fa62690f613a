"""Deterministic hashing embedder: the same text always gives the same vector, no model needed.

Bag of hashed word unigrams and bigrams, signed, L2-normalised: texts sharing words are similar, so it
is good enough for wiring tests; it is not a semantic model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memsvc._types import Matrix
from memsvc.exceptions import ConfigError

__all__ = ["HashingEmbedder"]

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class HashingEmbedder:
    """Feature-hashing embedder (``dim`` buckets)."""

    dim: int = 384
    name: str = "hashing"
    version: str = "1"

    def __post_init__(self) -> None:
        if self.dim < 8:
            raise ConfigError("HashingEmbedder.dim must be >= 8")

    def _bucket(self, token: str) -> tuple[int, float]:
        h = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
        n = int.from_bytes(h, "little")
        return n % self.dim, 1.0 if (n >> 63) & 1 else -1.0

    def embed(self, texts: Sequence[str]) -> Matrix:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            feats = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
            if not feats:
                feats = [text]
            for f in feats:
                i, s = self._bucket(f)
                out[row, i] += s
            n = float(np.linalg.norm(out[row]))
            if n > 0:
                out[row] /= n
        return out
