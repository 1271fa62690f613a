"""An embedder that remembers its outputs, for benchmarks that embed the same texts many times.

``CachedEmbedder`` wraps a real embedder and answers texts it has seen from memory, optionally kept in
an ``.npz`` file between runs (keys: SHA-1 of model name, version and text). It presents the wrapped
model's name, version and dim, so stores record the real model; vectors are the model's own outputs,
bit for bit. The LoCoMo bench embeds each question 8 times (4 budgets × search and context) and the
same turns in every configuration it compares.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from memsvc._types import Matrix
from memsvc.embedders import Embedder

__all__ = ["CachedEmbedder"]


class CachedEmbedder:
    """``Embedder`` over ``inner`` with a text -> vector memory (and ``path`` to keep it)."""

    def __init__(self, inner: Embedder, path: str | Path | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = inner.version
        self.dim = inner.dim
        self.path = Path(path) if path is not None else None
        self._vecs: dict[str, np.ndarray] = {}
        self._dirty = False
        self.hits = self.misses = 0
        if self.path is not None and self.path.is_file():
            with np.load(self.path) as z:
                keys, mat = z["keys"], z["vectors"]
            if mat.ndim == 2 and mat.shape[1] == self.dim:
                self._vecs = {str(k): v for k, v in zip(keys, mat, strict=True)}

    def _key(self, text: str) -> str:
        return hashlib.sha1(f"{self.name}\x1f{self.version}\x1f{text}".encode()).hexdigest()

    def embed(self, texts: Sequence[str]) -> Matrix:
        keys = [self._key(t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vecs}
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        if todo:
            got = self.inner.embed(list(todo.values()))
            self._vecs.update(zip(todo, np.asarray(got, dtype=np.float32), strict=True))
            self._dirty = True
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vecs[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        """Write the memory to ``path`` (atomically; nothing when unchanged or no path)."""
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        keys = np.array(list(self._vecs), dtype="U40")
        mat = np.stack(list(self._vecs.values())) if self._vecs else np.zeros((0, self.dim), np.float32)
        np.savez(tmp, keys=keys, vectors=mat)
        tmp.replace(self.path)
        self._dirty = False
