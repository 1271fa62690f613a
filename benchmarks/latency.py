"""Add and search latency at N stored memories on the embedded profile (SQLite + qdrant-edge + MiniLM).

1. Bulk load: ``n`` synthetic turns (``synthetic.synthetic_turns``) across ``users`` users and many
   sessions, through ``Memory.add_events`` in batches of ``batch`` events (the efficient path; not timed
   per call, reported as throughput).
2. ``Memory.consolidate(jobs=["close"])``: closes idle episodes, reconciles SQL and vectors, builds the
   HNSW index (the summarize/extract jobs are ``memsvc bench consolidation``'s subject).
3. Timed, one call at a time after a short warm-up: ``samples`` single-turn ``Memory.add`` calls (a new
   turn in a live session of a random user) and ``samples`` ``Memory.search`` calls (query embedding
   included) with the default limit of 10 hits, and as many with ``budget_tokens=1000``.
4. Index: ``vector_bytes`` (float32 and, when quantized, quantized vector bytes, from the store) and
   ``dense_recall_at_10``: for ``samples`` queries, the share of the exact 10 nearest points (numpy over
   every vector of the user) that the vector store's search returns: what quantization (and HNSW) cost.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from memsvc.benchmarks.results import percentiles
from memsvc.benchmarks.synthetic import SyntheticTurn, synthetic_queries, synthetic_turns

__all__ = ["run_latency"]


def _batches(it: Iterator[SyntheticTurn], size: int) -> Iterator[list[SyntheticTurn]]:
    while chunk := list(islice(it, size)):
        yield chunk


def run_latency(
    n: int = 100_000,
    settings: Any = None,
    users: int = 10,
    batch: int = 2_000,
    samples: int = 200,
    seed: int = 0,
    data_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    """Run the benchmark in ``data_dir`` (a temporary folder when ``None``). ``reuse``: the folder
    already holds the store a previous run loaded with the same ``n``, ``users`` and ``seed`` (load
    once, time many: the bulk load is skipped, timed adds of earlier runs stay in the store)."""
    if n < 1 or users < 1 or batch < 1 or samples < 1:
        raise ValueError("n, users, batch and samples must be positive")
    if reuse and (data_dir is None or not (Path(data_dir) / "memsvc.db").exists()):
        raise ValueError("reuse needs a data_dir holding a loaded store")
    with tempfile.TemporaryDirectory(prefix="memsvc-latency-") as tmp:
        return _run(n, settings, users, batch, samples, seed, Path(data_dir or tmp), progress, reuse)


def _run(
    n: int,
    settings: Any,
    users: int,
    batch: int,
    samples: int,
    seed: int,
    path: Path,
    progress: Callable[[int], None] | None,
    reuse: bool = False,
) -> dict[str, Any]:
    from memsvc import ChatEvent, Memory

    users = min(users, n)
    m = Memory(settings, path=path)
    try:
        t0 = time.perf_counter()
        last = None
        if reuse:
            last = max(t.timestamp for t in synthetic_turns(n, users=users, seed=seed))
        for chunk in _batches(synthetic_turns(n, users=users, seed=seed) if not reuse else iter(()), batch):
            m.add_events(
                [
                    ChatEvent(
                        user_id=t.user_id,
                        text=t.text,
                        role=t.role,
                        session_id=t.session_id,
                        timestamp=t.timestamp,
                        name=t.name,
                    )
                    for t in chunk
                ]
            )
            last = (
                max(t.timestamp for t in chunk) if last is None else max(last, *(t.timestamp for t in chunk))
            )
            if progress:
                progress(len(chunk))
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        # maintenance only (close idle episodes, reconcile, HNSW build): the summarize/extract jobs are
        # measured by ``memsvc bench consolidation``; at 100k turns they would dominate this run
        cons = m.consolidate(jobs=["close"]) if not reuse else {}
        consolidate_s = time.perf_counter() - t0
        stats = m.stats()

        rng = random.Random(seed + 1)
        live = [f"user-{rng.randrange(users):04d}" for _ in range(samples + 5)]
        new_turns = list(synthetic_turns(samples + 5, users=1, session_turns=samples + 5, seed=seed + 2))
        queries = synthetic_queries(2 * samples + 10, seed=seed + 3)
        if last is None:  # n >= 1 is checked by run_latency
            raise RuntimeError("nothing was loaded")
        add_s: list[float] = []
        for i, (uid, t) in enumerate(zip(live, new_turns, strict=True)):
            ts = last + timedelta(days=1, seconds=i)
            t1 = time.perf_counter()
            m.add(
                messages=[{"role": t.role, "content": t.text, "name": t.name}],
                user_id=uid,
                session_id=f"{uid}-live",
                timestamp=ts,
            )
            if i >= 5:  # warm-up: first calls load the tokenizer paths and caches
                add_s.append(time.perf_counter() - t1)
        search_s: list[float] = []
        budget_s: list[float] = []
        search_stages: dict[str, list[float]] = {}
        budget_stages: dict[str, list[float]] = {}
        for i, q in enumerate(queries):
            uid = f"user-{rng.randrange(users):04d}"
            budget = 1000 if i % 2 else None
            t1 = time.perf_counter()
            m.search(q, user_id=uid, budget_tokens=budget)
            took = time.perf_counter() - t1
            if i >= 10:
                (budget_s if budget else search_s).append(took)
                stage = budget_stages if budget else search_stages
                for k, v in m.service.last_search_timings().items():
                    stage.setdefault(k, []).append(v)
        index = _index(m, users, queries[: samples], rng)
    finally:
        m.close()
    return {
        "n": n,
        "users": users,
        "add_ms": percentiles(add_s),
        "search_ms": percentiles(search_s),
        "search_budget1000_ms": percentiles(budget_s),
        # where the time goes: mean ms per stage (MemoryService.last_search_timings)
        "search_stages_mean_ms": _means(search_stages),
        "search_budget1000_stages_mean_ms": _means(budget_stages),
        "samples": samples,
        "reused_store": reuse,
        "load_s": round(load_s, 1),
        "load_turns_per_s": round(n / load_s, 1) if load_s else 0.0,
        "consolidate_s": round(consolidate_s, 1),
        "consolidate": cons,
        "stats": stats,
        "index": index,
    }


def _means(stages: dict[str, list[float]]) -> dict[str, float]:
    return {k: round(sum(v) / len(v), 2) for k, v in sorted(stages.items()) if v}


def _index(m: Any, users: int, queries: list[str], rng: random.Random, k: int = 10) -> dict[str, Any]:
    import numpy as np

    from memsvc.stores import Scope

    svc = m.service
    sizes = getattr(svc.vectors, "vector_bytes", None)
    out: dict[str, Any] = {"vector_bytes": sizes() if callable(sizes) else None}
    qv = svc.embedder.embed(queries)
    by_user: dict[str, list[int]] = {}
    for i in range(len(queries)):
        by_user.setdefault(f"user-{rng.randrange(users):04d}", []).append(i)
    hit = total = 0
    for uid, idx in by_user.items():
        scope = Scope(svc.tenant, uid)
        ids = sorted(svc.vectors.ids(scope))
        if not ids:
            continue
        vecs = svc.vectors.fetch(ids)
        ids = [i for i in ids if i in vecs]
        mat = np.stack([vecs[i] for i in ids])
        mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-9)
        exact = np.argsort(-(qv[idx] @ mat.T), axis=1)[:, :k]
        got = svc.vectors.search(scope, qv[idx], k)
        for row, res in zip(exact, got, strict=True):
            want = {ids[j] for j in row}
            hit += len(want & {pid for pid, _ in res})
            total += len(want)
    out["dense_recall_at_10"] = round(hit / total, 4) if total else None
    return out
