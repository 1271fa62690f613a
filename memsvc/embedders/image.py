"""Image embedders: frames sent as images become frame-space vectors.

    ImageEmbedder --> PixelImageEmbedder (``pixels``: colour layout + histogram, no model; tests, wiring)
                  --> ClipImageEmbedder (``clip``: a sentence-transformers CLIP model by name or path,
                                         text and images in one space)

An image is a path (str or ``Path``), a ``PIL.Image.Image`` or an ``(H, W, 3)`` / ``(H, W)`` array
(uint8 0-255 or float 0-1). ``shares_text_space`` tells whether ``embed_texts`` maps text queries into
the same space, so a text query can reach frames directly (CLIP) and not only through captions.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from memsvc._types import Matrix
from memsvc.exceptions import ConfigError, InvalidInputError, MissingDependencyError, ModelError

__all__ = ["ClipImageEmbedder", "ImageEmbedder", "PixelImageEmbedder", "load_image_array"]


@runtime_checkable
class ImageEmbedder(Protocol):
    """Maps images to L2-normalised float32 vectors of shape (len(images), dim)."""

    name: str
    version: str
    dim: int
    shares_text_space: bool

    def embed_images(self, images: Sequence[Any]) -> Matrix:
        """Embed a batch of images (see the module doc for accepted types)."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> Matrix:
        """Text queries in the image space; only when ``shares_text_space`` (else ``ConfigError``)."""
        ...


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependencyError("pip install memsvc[vision]  (Pillow, to read image files)") from exc
    return Image


def load_image_array(image: Any) -> np.ndarray:
    """An image as a float32 (H, W, 3) array in [0, 1]."""
    if isinstance(image, str | Path):
        try:
            with _pil().open(image) as im:
                arr = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise InvalidInputError(f"cannot read image {str(image)!r}: {exc}") from exc
    elif hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        arr = np.asarray(image.convert("RGB"))
    else:
        arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"an image must be (H, W, 3), (H, W) or a path; got shape {arr.shape}")
    arr = arr[:, :, :3]
    out = arr.astype(np.float32)
    if arr.dtype == np.uint8 or out.max(initial=0.0) > 1.0:
        out /= 255.0
    if not np.isfinite(out).all():
        raise InvalidInputError("image holds NaN or inf")
    return out


@dataclass
class PixelImageEmbedder:
    """Colour layout (``grid`` x ``grid`` block means per channel, centred) plus per-channel histograms.

    No model and deterministic: a cut between two shots changes the vector, a static camera does not.
    It does not understand content and shares no space with text.
    """

    grid: int = 8
    bins: int = 8
    name: str = "pixels"
    version: str = "1"
    shares_text_space: bool = False
    dim: int = field(init=False)

    def __post_init__(self) -> None:
        if self.grid < 1 or self.bins < 2:
            raise ConfigError("grid must be >= 1 and bins >= 2")
        self.dim = 3 * self.grid * self.grid + 3 * self.bins

    def _one(self, image: Any) -> np.ndarray:
        a = load_image_array(image)
        h, w, _ = a.shape
        ys = np.linspace(0, h, self.grid + 1).astype(int)
        xs = np.linspace(0, w, self.grid + 1).astype(int)
        layout = np.empty((self.grid, self.grid, 3), dtype=np.float32)
        for i in range(self.grid):
            for j in range(self.grid):
                block = a[ys[i] : max(ys[i + 1], ys[i] + 1), xs[j] : max(xs[j + 1], xs[j] + 1)]
                layout[i, j] = block.reshape(-1, 3).mean(axis=0)
        hist = [np.histogram(a[:, :, c], bins=self.bins, range=(0.0, 1.0))[0] for c in range(3)]
        h_vec = np.concatenate(hist).astype(np.float32) / float(h * w)
        v = np.concatenate([layout.reshape(-1) - 0.5, h_vec - 1.0 / self.bins])
        n = float(np.linalg.norm(v))
        if n == 0:
            v = np.full_like(v, 1.0)
            n = float(np.linalg.norm(v))
        return v / n

    def embed_images(self, images: Sequence[Any]) -> Matrix:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._one(im) for im in images]).astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> Matrix:
        raise ConfigError("the pixels image embedder shares no space with text")


_MODELS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


@dataclass
class ClipImageEmbedder:
    """A sentence-transformers CLIP model (``model``: hub name or local path; offline needs a path)."""

    model: str = "clip-ViT-B-32"
    device: str = "cpu"
    batch_size: int = 32
    name: str = ""
    version: str = "st"
    shares_text_space: bool = True
    dim: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"clip:{Path(self.model).name if Path(self.model).exists() else self.model}"
        if not self.dim:
            model = self._model()
            getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            dim = getter()
            if not dim:
                raise ModelError(f"{self.model!r} does not report an embedding size")
            self.dim = int(dim)

    def _model(self) -> Any:
        key = (self.model, self.device)
        with _LOCK:
            if key not in _MODELS:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise MissingDependencyError("pip install sentence-transformers") from exc
                try:
                    _MODELS[key] = SentenceTransformer(self.model, device=self.device)
                except Exception as exc:
                    raise ModelError(f"cannot load CLIP model {self.model!r}: {exc}") from exc
            return _MODELS[key]

    def _encode(self, inputs: list[Any]) -> Matrix:
        try:
            out = self._model().encode(inputs, batch_size=self.batch_size, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)
        except Exception as exc:
            raise ModelError(f"CLIP embedding failed: {exc}") from exc
        return np.asarray(out, dtype=np.float32).reshape(len(inputs), -1)

    def embed_images(self, images: Sequence[Any]) -> Matrix:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        image_mod = _pil()
        pil = [image_mod.fromarray(np.clip(load_image_array(im) * 255.0, 0, 255).astype(np.uint8)) for im in images]
        return self._encode(pil)

    def embed_texts(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode(list(texts))
