"""Learned boundary model over TextTiling-style features: the default conversation segmenter.

    GapScoringSegmenter --> BoundarySegmenter

The score of a gap is the probability, from a numpy logistic regression (or a small ensemble of tiny
MLPs: the format holds both), that a topic boundary follows item ``j``, given the features of
``segmenters.features`` (block cosines at several window sizes, depth, cohesion with the open episode,
skip-one cosines, question marks, lengths, speakers). Weights and
the decoding settings they were tuned with ship in ``segmenters/weights/boundary.npz``. Retrain with
``python -m memsvc.benchmarks.segmentation_train`` (see docs/SEGMENTATION_NOTES.md).

Frames (items without text) fall back to TextTiling depth, as SceneTilling does for video.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from memsvc._types import Matrix
from memsvc.exceptions import ConfigError
from memsvc.segmenters.base import SegmentItem
from memsvc.segmenters.features import FEATURE_NAMES, depth_at, gap_features, similarity_curve
from memsvc.segmenters.gap import GapScoringSegmenter

__all__ = ["BoundaryModel", "BoundarySegmenter", "default_model_path"]


def default_model_path() -> Path:
    """The packaged weights."""
    return Path(str(resources.files("memsvc.segmenters") / "weights" / "boundary.npz"))


@dataclass(frozen=True)
class BoundaryModel:
    """Standardise, then ``tanh`` hidden layers, then a logistic output: P(boundary | features).

    The layers carry a leading member axis (``weights[i]``: (members, in, out)); the probability is the
    mean over the members (an ensemble of small MLPs trained from different seeds, for stability).
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    """Feature names, lookahead and the decoding settings the model was tuned with, training data."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Boundary probabilities for rows of features, shape (n, F) -> (n,)."""
        h = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        h = np.broadcast_to(h, (self.weights[0].shape[0], *h.shape))
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.tanh(h @ w + b[:, None, :])
        z = (h @ self.weights[-1] + self.biases[-1][:, None, :])[..., 0]
        return np.asarray((1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).mean(0))

    def save(self, path: str | Path) -> None:
        """Write the model as one small ``.npz`` (no pickles)."""
        arrays: dict[str, np.ndarray] = {"mean": self.mean, "scale": self.scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"w{i}"] = w.astype(np.float32)
            arrays[f"b{i}"] = np.asarray(b, dtype=np.float32)
        arrays["meta"] = np.array(json.dumps(self.meta, sort_keys=True))
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | Path) -> BoundaryModel:
        """Read a model written by ``save``."""
        try:
            with np.load(path, allow_pickle=False) as z:
                layers = sorted(int(k[1:]) for k in z.files if k.startswith("w"))
                meta = json.loads(str(z["meta"]))
                model = cls(
                    mean=z["mean"].astype(np.float64),
                    scale=z["scale"].astype(np.float64),
                    weights=tuple(z[f"w{i}"].astype(np.float64) for i in layers),
                    biases=tuple(z[f"b{i}"].astype(np.float64) for i in layers),
                    meta=meta,
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot read boundary model {path}: {exc}") from exc
        if tuple(meta.get("features", ())) != FEATURE_NAMES:
            raise ConfigError(f"boundary model {path} was trained on other features: {meta.get('features')}")
        return model


_DEPTH = FEATURE_NAMES.index("depth_w2")


@lru_cache(maxsize=8)
def _load(path: str) -> BoundaryModel:
    return BoundaryModel.load(path)


@dataclass
class BoundarySegmenter(GapScoringSegmenter):
    """Cuts where the learned boundary probability exceeds ``threshold`` (tuned value in the weights)."""

    model: str | BoundaryModel | None = None
    """Path of a ``.npz`` written by the training command (or a loaded model); None: the packaged weights."""
    break_depth: float | None = None
    """A gap whose TextTiling depth (2-turn blocks) exceeds this is a boundary whatever the model says
    (None: off). For domains where a plain semantic break is the best evidence (0.6 lifted MT-Bench+
    by 0.04 Score and cost SuperDialseg 0.04 with a logistic model; see docs/SEGMENTATION_NOTES.md)."""
    frame_threshold: float = 0.2
    """Depth threshold for items without text (video frames): SceneTilling over adjacent embeddings."""
    name: str = "boundary"
    _model: BoundaryModel = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.model, BoundaryModel):
            self._model = self.model
        else:
            self._model = _load(str(self.model or default_model_path()))
        super().__post_init__()
        want = int(self._model.meta.get("lookahead", 3))
        if self.lookahead != want:
            raise ConfigError(f"this boundary model was trained with lookahead={want}")

    @property
    def trained_as_ingested(self) -> bool:
        """The model learned from what ``Memory.add`` feeds it (``"speaker: text"`` embeddings, a speaker
        on every turn), so benchmarks should feed it the same (``segdata.as_ingested``)."""
        return bool(self._model.meta.get("as_ingested", False))

    def default_threshold(self) -> float:
        return float(self._model.meta.get("threshold", 0.5))

    def default_lookahead(self) -> int:
        return int(self._model.meta.get("lookahead", 3))

    def gap_score(self, emb: Matrix, items: Sequence[SegmentItem], j: int) -> float:
        if not items[j].text and not items[j + 1].text:
            # frames: SceneTilling depth over adjacent items, shifted so it crosses the threshold at
            # frame_threshold (and still orders gaps for the peak rule)
            return float(self.threshold or 0.0) + depth_at(similarity_curve(emb, 1), j) - self.frame_threshold
        x = gap_features(emb, [it.text for it in items], [it.speaker for it in items], j,
                         int(self.lookahead or 1))
        if self.break_depth is not None and x[_DEPTH] > self.break_depth:
            return 1.0
        return float(self._model.predict(x[None, :])[0])
