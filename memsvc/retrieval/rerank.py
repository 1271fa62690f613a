"""Second-stage rankers: reorder the best fused hits before packing (``RERANKERS``, chosen by name).

    Reranker          the protocol: ``rerank(query, hits, ctx) -> hits``
    RERANKERS         ``none`` (keep the fused order), ``mmr``, ``cross-encoder``

Set in ``Settings.retrieval.reranker`` (``MEMSVC_RETRIEVAL__RERANKER__BACKEND=cross-encoder``,
``...__OPTIONS='{"model": "/models/ms-marco-MiniLM-L-6-v2"}'``). Only the ``rerank_top`` best hits of
the fused ranking are reordered; the rest keep their place after them. Every reranker records its part in
``Hit.components["rerank"]`` (explainability); the packer follows the new order.

* ``mmr`` — Maximal Marginal Relevance (Carbonell & Goldstein, 1998): greedily pick the hit maximising
  ``λ · relevance − (1 − λ) · max cosine to the hits already picked``, relevance being the fused score
  scaled to 0..1; near-duplicate memories stop crowding a small budget.
* ``cross-encoder`` — a sentence-transformers ``CrossEncoder`` from a local path or name (no hub at run
  time: ``local_files_only``), loaded lazily once; the final score is ``(1 − mix) · fused + mix · ce``,
  both min-max scaled over the reranked hits (``mix = 1``: the cross-encoder's order).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from memsvc.exceptions import ConfigError, MissingDependencyError
from memsvc.models import Hit
from memsvc.registry import Registry

__all__ = [
    "RERANKERS", "CrossEncoderReranker", "MMRReranker", "NoReranker", "RerankContext", "Reranker", "rerank_top",
]


@dataclass(frozen=True)
class RerankContext:
    """What a reranker may use besides the hits: the stored vectors of units and the query embedder."""

    vectors: Callable[[Sequence[str]], dict[str, np.ndarray]]
    embed: Callable[[Sequence[str]], np.ndarray]


@runtime_checkable
class Reranker(Protocol):
    name: str

    def rerank(self, query: str, hits: list[Hit], ctx: RerankContext) -> list[Hit]:
        """``hits`` (best first) in their new order; may not add or drop any."""
        ...


def _scaled(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.ones_like(a)


class NoReranker:
    """The fused order, unchanged."""

    name = "none"

    def rerank(self, query: str, hits: list[Hit], ctx: RerankContext) -> list[Hit]:
        return hits


class MMRReranker:
    """Maximal Marginal Relevance over the units' stored vectors."""

    name = "mmr"

    def __init__(self, lambda_: float = 0.7, **options: Any) -> None:
        lam = options.pop("lambda", lambda_)
        if options:
            raise ConfigError(f"unknown mmr options {sorted(options)}")
        if not 0.0 <= float(lam) <= 1.0:
            raise ConfigError("mmr lambda must be within [0, 1]")
        self.lam = float(lam)

    def rerank(self, query: str, hits: list[Hit], ctx: RerankContext) -> list[Hit]:
        if len(hits) < 2:
            return hits
        vecs = ctx.vectors([h.id for h in hits])
        dim = next((len(v) for v in vecs.values()), 0)
        mat = np.zeros((len(hits), dim), dtype=np.float32)
        for i, h in enumerate(hits):
            v = vecs.get(h.id)
            if v is not None:
                mat[i] = v / max(float(np.linalg.norm(v)), 1e-9)
        rel = _scaled([h.score for h in hits])
        sims = mat @ mat.T
        chosen: list[int] = []
        best_sim = np.zeros(len(hits))
        left = list(range(len(hits)))
        while left:
            # ties: the earlier fused rank wins (``left`` keeps that order, argmax takes the first)
            vals = [self.lam * rel[i] - (1.0 - self.lam) * (best_sim[i] if chosen else 0.0) for i in left]
            pick = left.pop(int(np.argmax(vals)))
            chosen.append(pick)
            best_sim = np.maximum(best_sim, sims[pick])
        out = []
        n = len(hits)
        for rank, i in enumerate(chosen):
            h = hits[i]
            h.components["rerank"] = round(float(n - rank) / n, 6)
            out.append(h)
        return out


class CrossEncoderReranker:
    """A sentence-transformers cross-encoder scoring (query, memory text) pairs."""

    name = "cross-encoder"

    def __init__(self, model: str | None = None, device: str | None = None, mix: float = 1.0,
                 batch_size: int = 32, max_length: int = 512) -> None:
        if not model:
            raise ConfigError("the cross-encoder reranker needs options.model (a local path or a cached name)")
        if not 0.0 <= mix <= 1.0:
            raise ConfigError("cross-encoder mix must be within [0, 1]")
        self.model_name, self.device, self.mix = model, device, float(mix)
        self.batch_size, self.max_length = batch_size, max_length
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import CrossEncoder
                except ImportError as exc:  # pragma: no cover - a core dependency
                    raise MissingDependencyError("the cross-encoder reranker needs sentence-transformers") from exc
                try:
                    self._model = CrossEncoder(self.model_name, device=self.device, local_files_only=True,
                                               max_length=self.max_length)
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"cannot load cross-encoder {self.model_name!r}: {exc}") from exc
            return self._model

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        out = model.predict([(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False,
                            convert_to_numpy=True)
        return np.asarray(out, dtype=np.float64).reshape(len(texts), -1)[:, -1]

    def rerank(self, query: str, hits: list[Hit], ctx: RerankContext) -> list[Hit]:
        if not hits:
            return hits
        ce = self.scores(query, [h.text for h in hits])
        final = (1.0 - self.mix) * _scaled([h.score for h in hits]) + self.mix * _scaled(ce.tolist())
        for h, raw, f in zip(hits, ce, final, strict=True):
            h.components["rerank"] = round(float(raw), 6)
            h.score = round(float(f), 6)  # the cross-encoder's scale: the tail keeps the fused one
        order = sorted(range(len(hits)), key=lambda i: (-final[i], i))
        return [hits[i] for i in order]


RERANKERS: Registry[Reranker] = Registry("reranker", Reranker)
RERANKERS.register("none")(NoReranker)
RERANKERS.register("mmr")(MMRReranker)
RERANKERS.register("cross-encoder")(CrossEncoderReranker)


def rerank_top(reranker: Reranker, query: str, hits: list[Hit], top: int, ctx: RerankContext) -> list[Hit]:
    """``hits`` with its ``top`` best reordered by ``reranker``; the rest follow, scored below them."""
    if isinstance(reranker, NoReranker) or not hits:
        return hits
    head, tail = hits[:top], hits[top:]
    new = reranker.rerank(query, list(head), ctx)
    if sorted(h.id for h in new) != sorted(h.id for h in head):
        raise ConfigError(f"reranker {reranker.name!r} added or dropped hits")
    return new + tail
