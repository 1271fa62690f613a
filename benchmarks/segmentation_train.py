"""Train the boundary model of the default segmenter (``segmenters/weights/boundary.npz``).

The shipped weights (see docs/SEGMENTATION_NOTES.md for the recipes compared, held out):

    python -m memsvc.benchmarks.segmentation_train --as-ingested --l2 0.1 --calibrate segments \
        --grid-step 0.025 --data ../shared/data/segmentation/tiage_train.jsonl \
        --data ../shared/data/segmentation/tiage_dev.jsonl --weight 0.75 --weight 0.25 \
        --out segmenters/weights/boundary.npz [--eval HELD_OUT.jsonl ...]

Steps: embed every utterance with the product embedder (MiniLM; cached in ``--cache-dir``); with
``--as-ingested`` as ``Memory.add`` embeds turns (``"speaker: text"``); features of every gap with the
open episode starting at the gold boundary before it (teacher forcing; ``--dagger`` adds a second pass
where it starts at the boundary the first model predicted); fit logistic regression (or a tiny MLP with
``--hidden``) by full-batch Adam on class-balanced log loss, each file weighing ``--weight`` (equal by
default, whatever its size); pick the decoding threshold (best weighted mean Score, or with
``--calibrate segments`` the segment count closest to gold). ``--eval`` scores the model on held-out
files next to the ``tiling`` reference; ``FILE@even``, ``FILE@odd``, ``FILE@k/n`` and ``FILE@^k/n``
select part of a file (held-out halves, cross-validation folds).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memsvc.benchmarks.segdata import (
    Dialogue,
    as_ingested,
    dialogue_items,
    embed_dialogues,
    load_dialogues,
    score,
)
from memsvc.segmenters.base import SegmentItem, sizes_to_labels
from memsvc.segmenters.boundary import BoundaryModel, BoundarySegmenter
from memsvc.segmenters.features import FEATURE_NAMES, gap_features

__all__ = [
    "CALIBRATIONS", "GRID", "Corpus", "evaluate", "extract", "fit", "load_corpora", "main", "predict_labels", "train",
    "tune_threshold",
]

GRID: tuple[float, ...] = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
"""Decoding thresholds tried when calibrating."""
CALIBRATIONS = ("score", "segments")
"""How the decoding threshold is chosen (``tune_threshold``)."""


@dataclass
class Corpus:
    """Dialogues of one file with their embeddings."""

    name: str
    dialogues: list[Dialogue]
    embeddings: list[np.ndarray]


def _starts_from_labels(labels: Sequence[int]) -> list[int]:
    """Start of the segment each gap's left item belongs to."""
    starts, s = [], 0
    for g in range(len(labels) - 1):
        starts.append(s)
        if labels[g]:
            s = g + 1
    return starts


def extract(
    corpus: Corpus, lookahead: int, cuts: list[list[int]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Features and gold labels of every gap; the open episode starts after the previous cut in
    ``cuts`` (per-dialogue label lists), or after the previous gold boundary."""
    xs, ys = [], []
    for k, (d, emb) in enumerate(zip(corpus.dialogues, corpus.embeddings, strict=True)):
        e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
        n = len(d.utterances)
        starts = _starts_from_labels(cuts[k] if cuts is not None else d.labels)
        for g in range(n - 1):
            s, end = starts[g], min(g + 1 + lookahead, n)
            xs.append(gap_features(e[s:end], d.utterances[s:end], d.speakers[s:end], g - s, lookahead))
            ys.append(d.labels[g])
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def fit(
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    hidden: int = 8,
    l2: float = 1e-3,
    steps: int = 1500,
    lr: float = 0.02,
    seed: int = 0,
    weights: Sequence[float] | None = None,
    members: int = 1,
) -> BoundaryModel:
    """Fit ``members`` MLPs (``hidden=0``: logistic regression) from seeds ``seed, seed+1, ...`` on
    several sets, each weighing ``weights`` (default: the same) and each balanced between boundary and
    non-boundary gaps; the model averages their probabilities."""
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    share = _shares(weights, len(xs))
    w = np.concatenate([_balance(yy) * a for yy, a in zip(ys, share, strict=True)])
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    fitted = [_fit_one(z, y, w, hidden, l2, steps, lr, seed + k) for k in range(members)]
    return BoundaryModel(
        mean=mean, scale=scale,
        weights=tuple(np.stack([f[i] for f in fitted]) for i in range(0, len(fitted[0]), 2)),
        biases=tuple(np.stack([f[i] for f in fitted]) for i in range(1, len(fitted[0]), 2)),
        meta={"features": list(FEATURE_NAMES), "hidden": hidden, "l2": l2, "steps": steps, "members": members},
    )


def _fit_one(
    z: np.ndarray, y: np.ndarray, w: np.ndarray, hidden: int, l2: float, steps: int, lr: float, seed: int
) -> list[np.ndarray]:
    """Full-batch Adam on weighted log loss; returns [w0, b0, w1, b1, ...]."""
    rng = np.random.default_rng(seed)
    dims = [z.shape[1], hidden, 1] if hidden else [z.shape[1], 1]
    params = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        params += [rng.normal(0, 1 / np.sqrt(a), (a, b)), np.zeros(b)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        hs = [z]
        for i in range(0, len(params) - 2, 2):
            hs.append(np.tanh(hs[-1] @ params[i] + params[i + 1]))
        logit = (hs[-1] @ params[-2] + params[-1]).reshape(-1)
        p = 1 / (1 + np.exp(-np.clip(logit, -30, 30)))
        delta = ((p - y) * w)[:, None]
        grads: list[np.ndarray] = [np.zeros(0)] * len(params)
        for li in range(len(params) // 2 - 1, -1, -1):
            grads[2 * li] = hs[li].T @ delta + l2 * params[2 * li]
            grads[2 * li + 1] = delta.sum(0)
            if li:
                delta = (delta @ params[2 * li].T) * (1 - hs[li] ** 2)
        for i, gr in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * gr
            v[i] = 0.999 * v[i] + 0.001 * gr**2
            params[i] -= lr * (m[i] / (1 - 0.9**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)
    return params


def _shares(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("need one non-negative weight per training file")
    return [w / sum(weights) for w in weights]


def _balance(y: np.ndarray) -> np.ndarray:
    pos = max(float(y.sum()), 1.0)
    neg = max(float(len(y) - y.sum()), 1.0)
    return np.where(y > 0, 0.5 / pos, 0.5 / neg)


class _CachedSegmenter(BoundarySegmenter):
    """Memoises gap scores by (start, gap, end) while one dialogue is decoded at several thresholds."""

    def bind(self, key: int) -> None:
        self._cache: dict[tuple[int, int, int, int], float] = getattr(self, "_cache", {})
        self._key = key

    def _score(self, emb: Any, items: Sequence[SegmentItem], start: int, g: int, limit: int,
               lookahead: int) -> float:
        k = (self._key, start, g, min(g + 1 + lookahead, limit))
        if k not in self._cache:
            self._cache[k] = super()._score(emb, items, start, g, limit, lookahead)
        return self._cache[k]


def predict_labels(seg: BoundarySegmenter, corpus: Corpus, cache_id: int = 0) -> list[list[int]]:
    """Offline segmentation of every dialogue of a corpus, as label lists."""
    out = []
    for k, (d, emb) in enumerate(zip(corpus.dialogues, corpus.embeddings, strict=True)):
        if isinstance(seg, _CachedSegmenter):
            seg.bind(cache_id * 1_000_000 + k)
        out.append(sizes_to_labels(seg.split(dialogue_items(d, emb), final=True)))
    return out


def tune_threshold(
    model: BoundaryModel, corpora: Sequence[Corpus], grid: Sequence[float],
    weights: Sequence[float] | None = None, calibrate: str = "score", **decode: Any
) -> tuple[float, dict[float, list[float]]]:
    """Decoding threshold for the corpora: with ``calibrate="score"`` the one maximising the (weighted)
    mean Score; with ``"segments"`` the one whose predicted segments per dialogue match the gold count
    best (weighted mean of |log(predicted / gold)| over the corpora, ties to the better Score).
    Returns it and the Score of every corpus at every threshold."""
    if calibrate not in CALIBRATIONS:
        raise ValueError(f"calibrate must be one of {CALIBRATIONS}")
    table: dict[float, list[float]] = {}
    misfit: dict[float, float] = {}
    share = _shares(weights, len(corpora))
    seg = _CachedSegmenter(model=model, threshold=0.5, **decode)
    for t in grid:
        seg.threshold = t
        rows = [score([d.labels for d in c.dialogues], predict_labels(seg, c, ci)) for ci, c in enumerate(corpora)]
        table[t] = [r["score"] for r in rows]
        misfit[t] = float(np.dot([abs(np.log(max(r["segments_per_dialogue"]["predicted"], 1e-9)
                                             / max(r["segments_per_dialogue"]["gold"], 1e-9))) for r in rows], share))
    if calibrate == "segments":
        best = min(grid, key=lambda t: (round(misfit[t], 3), -float(np.dot(table[t], share))))
    else:
        best = max(grid, key=lambda t: float(np.dot(table[t], share)))
    return best, table


def train(
    corpora: Sequence[Corpus],
    lookahead: int = 3,
    hidden: int = 0,
    l2: float = 1e-3,
    dagger: bool = False,
    grid: Sequence[float] = GRID,
    weights: Sequence[float] | None = None,
    members: int = 1,
    calibrate: str = "score",
    **decode: Any,
) -> BoundaryModel:
    """Fit and calibrate a boundary model on the corpora (see the module docstring)."""
    sets = [extract(c, lookahead) for c in corpora]
    model = fit([s[0] for s in sets], [s[1] for s in sets], hidden=hidden, l2=l2, weights=weights, members=members)
    model.meta["lookahead"] = lookahead
    thr, _ = tune_threshold(model, corpora, grid, weights, calibrate, lookahead=lookahead, **decode)
    if dagger:
        seg = BoundarySegmenter(model=model, threshold=thr, lookahead=lookahead, **decode)
        own = [extract(c, lookahead, predict_labels(seg, c)) for c in corpora]
        model = fit([np.concatenate([a[0], b[0]]) for a, b in zip(sets, own, strict=True)],
                    [np.concatenate([a[1], b[1]]) for a, b in zip(sets, own, strict=True)], hidden=hidden, l2=l2,
                    weights=weights, members=members)
        model.meta["lookahead"] = lookahead
        thr, _ = tune_threshold(model, corpora, grid, weights, calibrate, lookahead=lookahead, **decode)
    model.meta.update({"threshold": float(thr), "dagger": dagger, "weights": _shares(weights, len(corpora)),
                       "calibrate": calibrate, **decode})
    return model


def _part(spec: str) -> tuple[str, str]:
    """``FILE``, ``FILE@even``, ``FILE@odd``, ``FILE@k/n`` or ``FILE@^k/n`` -> (FILE, part)."""
    path, _, part = spec.partition("@")
    if part and _pick(part, 0) is None:
        raise ValueError(f"{spec}: the part after '@' must be even, odd, k/n or ^k/n")
    return path, part


def _pick(part: str, i: int) -> bool | None:
    """Whether dialogue ``i`` is in ``part`` (None: not a valid part): ``even``/``odd`` (= ``0/2``/``1/2``),
    ``k/n`` (fold k of n: i % n == k) or ``^k/n`` (the other folds)."""
    part = {"even": "0/2", "odd": "1/2"}.get(part, part)
    neg = part.startswith("^")
    k, _, n = part.lstrip("^").partition("/")
    if not (k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
        return None
    return (i % int(n) == int(k)) != neg


def load_corpora(
    paths: Sequence[str], cache_dir: str | None, use_roles: bool = True, ingested: bool = False
) -> list[Corpus]:
    """Read and embed the files (the product embedder: MiniLM); ``ingested``: as ``Memory.add`` sees them
    (``segdata.as_ingested``). A path may end in ``@even`` / ``@odd`` (that half of the file's dialogues),
    ``@k/n`` (fold k of n: dialogues i with i % n == k) or ``@^k/n`` (all but that fold); the whole file
    is embedded, so all parts share one cache entry."""
    from memsvc.benchmarks.segmentation import product_embedder

    embedder = product_embedder()
    out = []
    for spec in paths:
        path, part = _part(spec)
        dials = load_dialogues(path, use_roles=use_roles)
        if ingested:
            dials = as_ingested(dials)
        embs = embed_dialogues(dials, embedder, cache_dir, prefixed=ingested)
        if part:
            keep = [i for i in range(len(dials)) if _pick(part, i)]
            dials, embs = [dials[i] for i in keep], [embs[i] for i in keep]
        out.append(Corpus(Path(path).stem + (f"@{part}" if part else ""), dials, embs))
    return out


def evaluate(model: BoundaryModel, corpora: Sequence[Corpus], reference: bool = True,
             **decode: Any) -> dict[str, dict[str, Any]]:
    """Metrics of the model (offline decoding, its tuned threshold) on each corpus; with ``reference``
    also those of the unlearned ``tiling`` segmenter on the same embeddings (``<name> tiling``)."""
    from memsvc.segmenters import SEGMENTERS

    seg = BoundarySegmenter(model=model, **decode)
    out: dict[str, dict[str, Any]] = {}
    for c in corpora:
        gold = [d.labels for d in c.dialogues]
        out[c.name] = score(gold, predict_labels(seg, c))
        if reference:
            tiling = SEGMENTERS.create("tiling")
            out[f"{c.name} tiling"] = score(gold, predict_labels(tiling, c))  # type: ignore[arg-type]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train on --data files, write --out (and score --eval files, held out)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True,
                    help="training jsonl (repeat); FILE@even / FILE@odd: half of its dialogues, FILE@k/n: fold k of n "
                    "(dialogue i with i %% n == k), FILE@^k/n: the other folds")
    ap.add_argument("--out", default=None, help="where to write the model (.npz); omit to only --eval")
    ap.add_argument("--eval", action="append", default=[],
                    help="held-out jsonl to score the trained model on (repeat; parts as for --data)")
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "memsvc-seg"))
    ap.add_argument("--weight", type=float, action="append",
                    help="weight of each --data file in the loss and the threshold choice (default: equal)")
    ap.add_argument("--hidden", type=int, default=0, help="hidden units (0: logistic regression)")
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--members", type=int, default=1, help="ensemble size (seeds 0..members-1)")
    ap.add_argument("--calibrate", choices=CALIBRATIONS, default="score",
                    help="threshold: best Score on the training files, or segments per dialogue closest to gold")
    ap.add_argument("--grid-step", type=float, default=None,
                    help="thresholds tried: 0.30 to 0.85 in this step (default: 0.05)")
    ap.add_argument("--break-depth", type=float, default=None,
                    help="decode with this break_depth while calibrating (default: none)")
    ap.add_argument("--lookahead", type=int, default=3)
    ap.add_argument("--dagger", action="store_true", help="second pass on the model's own cuts")
    ap.add_argument("--as-ingested", action="store_true",
                    help="train on what Memory.add feeds the segmenter: 'speaker: text' embeddings, speakers on every turn")
    a = ap.parse_args(argv)
    if a.out is None and not a.eval:
        ap.error("nothing to do: give --out and/or --eval")
    corpora = load_corpora(a.data, a.cache_dir, ingested=a.as_ingested)
    grid = GRID if a.grid_step is None else tuple(
        round(float(t), 4) for t in np.arange(0.3, 0.85 + 1e-9, a.grid_step))
    model = train(corpora, lookahead=a.lookahead, hidden=a.hidden, l2=a.l2, dagger=a.dagger, weights=a.weight,
                  members=a.members, calibrate=a.calibrate, grid=grid, break_depth=a.break_depth)
    model.meta["trained_on"] = [c.name for c in corpora]
    model.meta["as_ingested"] = a.as_ingested
    if a.out is not None:
        model.save(a.out)
    report: dict[str, Any] = dict(model.meta)
    if a.eval:
        held = load_corpora(a.eval, a.cache_dir, ingested=a.as_ingested)
        report["eval"] = evaluate(model, held, break_depth=a.break_depth)
    json.dump(report, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
