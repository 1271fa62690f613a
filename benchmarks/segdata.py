"""Dialogue segmentation data and metrics, shared by the benchmark and the training command.

Data: jsonl, one dialogue a line, ``utterances`` [str] and ``segmentation_label`` [0/1] (1 = last
utterance of a segment); an optional ``roles`` list gives speakers. Metrics follow SeCom's protocol:
Pk and WindowDiff with k = half the mean gold segment length of the dialogue (at least 2), F1 on exact
boundaries, Score = (2 F1 + (1 - Pk) + (1 - WD)) / 4; the last label of both sides is ignored
(the end of a dialogue is not a boundary to find).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from memsvc.embedders import Embedder
from memsvc.segmenters import SegmentItem

__all__ = [
    "Dialogue", "as_ingested", "dialogue_items", "embed_dialogues", "load_dialogues", "pk_wd", "boundary_f1", "score",
]

_T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Dialogue:
    """One labelled dialogue."""

    utterances: list[str]
    labels: list[int]
    speakers: list[str | None]


def load_dialogues(path: str | Path, use_roles: bool = True) -> list[Dialogue]:
    """Read a segmentation jsonl file (speakers from ``roles`` when present and ``use_roles``)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            d: dict[str, Any] = json.loads(line)
            utts = [str(u) for u in d["utterances"]]
            labels = [int(x) for x in d["segmentation_label"]]
            if len(labels) != len(utts):
                raise ValueError(f"{path}: labels and utterances differ in length")
            roles = d.get("roles") if use_roles else None
            speakers: list[str | None] = (
                [None if r is None else str(r) for r in roles] if roles else [None] * len(utts)
            )
            out.append(Dialogue(utts, labels, speakers))
    return out


def as_ingested(dialogues: Sequence[Dialogue]) -> list[Dialogue]:
    """The dialogues as ``Memory.add`` hands them to the segmenter: every turn has a speaker (the file's
    role, or ``user``/``assistant`` alternating from the first turn when the file has none) and is
    embedded as its stored unit text ``"speaker: text"`` (``embed_dialogues(..., prefixed=True)``)."""
    out = []
    for d in dialogues:
        spk = [s if s is not None else ("user", "assistant")[i % 2] for i, s in enumerate(d.speakers)]
        out.append(Dialogue(d.utterances, d.labels, spk))
    return out


def dialogue_items(d: Dialogue, emb: np.ndarray) -> list[SegmentItem]:
    """SegmentItems of a dialogue (one second apart: no time gaps in these datasets)."""
    return [
        SegmentItem(embedding=emb[i], timestamp=_T0 + timedelta(seconds=i), text=u, speaker=d.speakers[i])
        for i, u in enumerate(d.utterances)
    ]


def embed_dialogues(
    dialogues: Sequence[Dialogue], embedder: Embedder, cache_dir: str | Path | None = None, prefixed: bool = False
) -> list[np.ndarray]:
    """Embed every utterance, one matrix per dialogue: the bare text, or with ``prefixed`` the text the
    ingest path stores and embeds, ``"speaker: text"`` (``memsvc.pipeline.turn_text``).

    With ``cache_dir``, vectors are kept in one ``.npy`` per (embedder, text list) so repeated
    runs skip the model.
    """
    if prefixed:
        from memsvc.pipeline import turn_text

        texts = [turn_text(s, None, u) for d in dialogues for u, s in zip(d.utterances, d.speakers, strict=True)]
    else:
        texts = [u for d in dialogues for u in d.utterances]
    cache = None
    if cache_dir is not None:
        key = hashlib.sha1((embedder.name + "\x00" + "\x01".join(texts)).encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"emb-{key}.npy"
        if cache.exists():
            flat = np.load(cache).astype(np.float32)
            return _unflatten(dialogues, flat)
    flat = np.asarray(embedder.embed(texts), dtype=np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, flat.astype(np.float16))
    return _unflatten(dialogues, flat)


def _unflatten(dialogues: Sequence[Dialogue], flat: np.ndarray) -> list[np.ndarray]:
    out, k = [], 0
    for d in dialogues:
        out.append(flat[k : k + len(d.utterances)])
        k += len(d.utterances)
    return out


def pk_wd(ref: Sequence[int], hyp: Sequence[int], k: int) -> tuple[float, float]:
    """Pk and WindowDiff over windows of k labels (label i = boundary after item i)."""
    r = np.cumsum(np.asarray(ref, dtype=np.int64))
    h = np.cumsum(np.asarray(hyp, dtype=np.int64))
    n = len(ref)
    if n - k <= 0:
        return 0.0, 0.0
    r0 = np.concatenate([[0], r])
    h0 = np.concatenate([[0], h])
    rc = r0[k:n] - r0[: n - k]
    hc = h0[k:n] - h0[: n - k]
    return float(np.mean((rc > 0) != (hc > 0))), float(np.mean(rc != hc))


def boundary_f1(ref: Sequence[int], hyp: Sequence[int]) -> float:
    """F1 of exact boundary positions (1.0 when both have none)."""
    r = {i for i, x in enumerate(ref) if x}
    h = {i for i, x in enumerate(hyp) if x}
    if not r and not h:
        return 1.0
    tp = len(r & h)
    p = tp / len(h) if h else 0.0
    q = tp / len(r) if r else 0.0
    return 2 * p * q / (p + q) if p + q else 0.0


def score(golds: Sequence[Sequence[int]], preds: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Mean Pk, WindowDiff, F1 and Score over dialogues, plus segments per dialogue."""
    rows = []
    seg_g, seg_p = [], []
    for g, p in zip(golds, preds, strict=True):
        ref, hyp = list(g), list(p)
        if len(ref) != len(hyp):
            raise ValueError("prediction length differs from dialogue length")
        ref[-1] = 0
        hyp[-1] = 0
        k = max(2, round(len(ref) / (sum(ref) + 1) / 2))
        pk, wd = pk_wd(ref, hyp, k)
        rows.append((pk, wd, boundary_f1(ref, hyp)))
        seg_g.append(sum(ref) + 1)
        seg_p.append(sum(hyp) + 1)
    a = np.asarray(rows, dtype=np.float64).mean(0) if rows else np.zeros(3)
    return {
        "pk": round(float(a[0]), 4),
        "windowdiff": round(float(a[1]), 4),
        "f1": round(float(a[2]), 4),
        "score": round(float((2 * a[2] + (1 - a[0]) + (1 - a[1])) / 4), 4),
        "n_dialogues": len(rows),
        "segments_per_dialogue": {
            "gold": round(float(np.mean(seg_g)), 3) if seg_g else 0.0,
            "predicted": round(float(np.mean(seg_p)), 3) if seg_p else 0.0,
        },
    }
