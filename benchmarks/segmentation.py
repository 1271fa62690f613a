"""Dialogue topic segmentation benchmark (``memsvc bench segmentation``).

Embeds every utterance with the configured embedder (MiniLM by default, the text as given: the
datasets carry no speaker names; ``roles``, when a file has them, become the items' speakers; with
``ingested`` as ``Memory.add`` does: ``"speaker: text"``, every turn with a speaker), runs a
segmenter over each dialogue, and scores it against the gold labels (see ``segdata`` for the metrics;
they agree with ``../shared/tools/score_segmentation.py`` on the predictions file).

``online=True`` feeds the turns one at a time the way the ingest pipeline does (the open episode plus
the new turn, ``final`` only at the end) instead of the whole dialogue at once; both must give the
same labels.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
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
from memsvc.embedders import Embedder
from memsvc.segmenters import SEGMENTERS, Segmenter, SegmentItem, sizes_to_labels

__all__ = ["product_embedder", "run", "segment_online"]


def product_embedder() -> Embedder:
    """The text embedder ``Memory.add`` uses with the default settings (``Settings().embedder``: MiniLM,
    ONNX Runtime on the CPU when available), so the timings are the product's."""
    from memsvc.config import Settings
    from memsvc.embedders import EMBEDDERS

    cfg = Settings().embedder
    return EMBEDDERS.create(cfg.backend, **cfg.options)


def segment_online(segmenter: Segmenter, items: Sequence[SegmentItem], step: int = 1) -> list[int]:
    """Feed ``items`` ``step`` at a time, as the ingest pipeline does; returns segment sizes."""
    sizes: list[int] = []
    open_start = 0
    for stop in range(step, len(items) + step, step):
        stop = min(stop, len(items))
        final = stop == len(items)
        got = segmenter.split(items[open_start:stop], final=final)
        sizes += got
        open_start += sum(got)
        if final:
            break
    return sizes


def _embedder_options(embedder: Embedder) -> dict[str, Any]:
    """The settings that change an embedder's speed (runtime, threads, batch size), where it has them."""
    inner = getattr(embedder, "inner", embedder)
    return {k: getattr(inner, k) for k in ("runtime", "threads", "batch_size", "device") if hasattr(inner, k)}


def run(
    data: str | Path,
    segmenter: str = "boundary",
    options: dict[str, Any] | None = None,
    embedder: Embedder | None = None,
    predictions: str | Path | None = None,
    use_roles: bool = True,
    online: bool = False,
    cache_dir: str | Path | None = None,
    ingested: bool | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score ``segmenter`` on a jsonl file. Returns (the metrics JSON, extra run details).

    ``ingested``: what ``Memory.add`` feeds the segmenter (``segdata.as_ingested``: every turn has a
    speaker, embeddings of ``"speaker: text"``) instead of bare utterance embeddings; None: the view
    the segmenter's model was trained on (``as_ingested`` in a boundary model's meta), else bare."""
    if embedder is None:
        embedder = product_embedder()
        embedder.embed(["warm up"])
    seg = SEGMENTERS.create(segmenter, **(options or {}))
    dialogues: list[Dialogue] = load_dialogues(data, use_roles=use_roles)
    if ingested is None:
        ingested = bool(getattr(seg, "trained_as_ingested", False))
    if ingested:
        dialogues = as_ingested(dialogues)
    n_utt = sum(len(d.utterances) for d in dialogues)
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    embs = embed_dialogues(dialogues, embedder, cache_dir, prefixed=ingested)
    t1, c1 = time.perf_counter(), time.process_time()
    preds = []
    for d, e in zip(dialogues, embs, strict=True):
        items = dialogue_items(d, e)
        sizes = segment_online(seg, items) if online else seg.split(items, final=True)
        preds.append(sizes_to_labels(sizes))
    t2, c2 = time.perf_counter(), time.process_time()
    result = score([d.labels for d in dialogues], preds)
    if predictions is not None:
        with open(predictions, "w", encoding="utf-8") as f:
            for p in preds:
                f.write(json.dumps({"segmentation_label": p}) + "\n")
    details = {
        "data": str(data),
        "segmenter": segmenter,
        "options": options or {},
        "embedder": embedder.name,
        "embedder_options": _embedder_options(embedder),
        "embedder_runtime": str(getattr(getattr(embedder, "inner", embedder), "runtime_used", "n/a")),
        "online": online,
        "use_roles": use_roles,
        "ingested": ingested,
        "utterances": n_utt,
        "embed_s": round(t1 - t0, 3),
        "segment_s": round(t2 - t1, 3),
        "utterances_per_s": round(n_utt / max(t2 - t0, 1e-9), 1),
        "embed_only_utterances_per_s": round(n_utt / max(t1 - t0, 1e-9), 1),
        "segment_only_utterances_per_s": round(n_utt / max(t2 - t1, 1e-9), 1),
        "cpu_s": {"embed": round(c1 - c0, 3), "segment": round(c2 - c1, 3)},
        # per CPU-second of this process: what a dedicated core would do (wall figures on a shared box
        # are pessimistic; the load average says how shared it was)
        "utterances_per_cpu_s": round(n_utt / max(c2 - c0, 1e-9), 1),
        "embed_only_utterances_per_cpu_s": round(n_utt / max(c1 - c0, 1e-9), 1),
        "segment_only_utterances_per_cpu_s": round(n_utt / max(c2 - c1, 1e-9), 1),
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "embeddings_cached": cache_dir is not None,
        "threads": os.cpu_count(),
        "segments_std": float(np.std([sum(p[:-1]) + 1 for p in preds])) if preds else 0.0,
    }
    return result, details
