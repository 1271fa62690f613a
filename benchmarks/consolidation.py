"""Consolidation on LoCoMo: units, stored tokens and evidence recall before/after one pass.

    memsvc bench consolidation --data ../shared/data/locomo/locomo_dev.json [--budgets 500,1000,2000,4000] \
        [--jobs 5] [--settings '{"consolidation": {...}}']

Per conversation: a fresh embedded store in a temporary folder, one ``Memory.add`` per session
(``datasets.ingest_locomo``, one user per conversation); every QA of categories 1-4 is asked through
``Memory.search(question, budget_tokens=B)`` and scored with ``evidence.recall_from_hits`` (a returned
unit counts for an evidence turn only when it lists the turn among its sources AND its text keeps half of
the turn's content words). Then ``Memory.consolidate()`` runs once (timed) and everything is measured
again on the same store.

Result keys: ``before`` / ``after`` {``recall`` {budget: %}, ``per_category``, ``units`` / ``tokens``
(what retrieval sees: live units in the index, by level too), ``stored_units`` / ``stored_tokens`` (every
live unit in SQL)}, ``delta`` {budget: points}, ``consolidate_s``, ``s_per_1000_turns``, ``jobs`` (what
the pass did, summed), ``conversations``, ``questions``, ``turns``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from memsvc.benchmarks.datasets import LoCoMoConversation, ingest_locomo, iter_steps, load_locomo
from memsvc.benchmarks.evidence import recall_from_hits

__all__ = ["footprint", "run_consolidation"]


def _pct(xs: Sequence[float]) -> float:
    return round(100 * sum(xs) / len(xs), 2) if xs else 0.0


def footprint(m: Any, user: str) -> dict[str, int]:
    """Live units and their tokens for ``user``: in the index (by level) and in SQL."""
    from sqlalchemy import func, select

    from memsvc.stores.sql_schema import UnitRow

    svc = m.service
    live = (UnitRow.tenant_id == svc.tenant, UnitRow.user_id == user, UnitRow.deleted_at.is_(None))
    q = select(UnitRow.level, UnitRow.index_state != "none", func.count(), func.sum(UnitRow.token_count))
    with svc.sql.session() as s:
        rows = list(s.execute(q.where(*live).group_by(UnitRow.level, UnitRow.index_state != "none")))
    out: dict[str, int] = {"units": 0, "tokens": 0, "stored_units": 0, "stored_tokens": 0}
    for level, indexed, n, t in rows:
        out["stored_units"] += int(n)
        out["stored_tokens"] += int(t or 0)
        if indexed:
            out["units"] += int(n)
            out["tokens"] += int(t or 0)
            out[f"units_{level}"] = out.get(f"units_{level}", 0) + int(n)
            out[f"tokens_{level}"] = out.get(f"tokens_{level}", 0) + int(t or 0)
    return out


def _ask(m: Any, conv: LoCoMoConversation, key_of: dict[str, str], text_of: dict[str, str],
         budgets: Sequence[int], rec: dict[int, list[float]], cat: dict[int, dict[int, list[float]]]) -> None:
    for qa in conv.qas:
        for b in budgets:
            hits = m.search(qa.question, user_id=conv.sample_id, budget_tokens=b)
            r = recall_from_hits(hits, qa.evidence, key_of, text_of)
            rec[b].append(r)
            cat.setdefault(qa.category, {x: [] for x in budgets})[b].append(r)


def _add(acc: dict[str, int], more: dict[str, Any]) -> None:
    for k, v in more.items():
        if isinstance(v, int) and not isinstance(v, bool):
            acc[k] = acc.get(k, 0) + v


def _one(conv: LoCoMoConversation, budgets: Sequence[int], settings: Any) -> dict[str, Any]:
    """One conversation in a fresh store: per-question recall before/after, footprints, the pass's report."""
    from memsvc import Memory

    out: dict[str, Any] = {"rec": {p: {b: [] for b in budgets} for p in PHASES}, "cat": {p: {} for p in PHASES},
                           "fp": {}}
    with tempfile.TemporaryDirectory(prefix="memsvc-bench-") as d:
        m = Memory(settings, path=d)
        try:
            key_of, text_of, _ = ingest_locomo(m, conv, conv.sample_id)
            out["fp"]["before"] = footprint(m, conv.sample_id)
            _ask(m, conv, key_of, text_of, budgets, out["rec"]["before"], out["cat"]["before"])
            t0 = time.perf_counter()
            out["report"] = m.consolidate()
            out["seconds"] = time.perf_counter() - t0
            out["fp"]["after"] = footprint(m, conv.sample_id)
            _ask(m, conv, key_of, text_of, budgets, out["rec"]["after"], out["cat"]["after"])
        finally:
            m.close()
    return out


PHASES = ("before", "after")


def run_consolidation(
    data: str | Path,
    budgets: Sequence[int] = (500, 1000, 2000, 4000),
    settings: Any = None,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run the benchmark on a LoCoMo file; ``limit`` takes the first N conversations, ``jobs`` runs that
    many conversations at once in separate processes (same figures; each has its own store)."""
    convs = list(iter_steps(load_locomo(data), 1, limit))
    rec = {p: {b: [] for b in budgets} for p in PHASES}
    cat: dict[str, dict[int, dict[int, list[float]]]] = {p: {} for p in PHASES}
    fp: dict[str, dict[str, int]] = {p: {} for p in PHASES}
    jobs_done: dict[str, int] = {}
    cons_s = 0.0

    def fold(conv: LoCoMoConversation, one: dict[str, Any]) -> None:
        nonlocal cons_s
        for p in PHASES:
            for b in budgets:
                rec[p][b] += one["rec"][p][b]
            for c, per in one["cat"][p].items():
                for b in budgets:
                    cat[p].setdefault(c, {x: [] for x in budgets})[b] += per[b]
            _add(fp[p], one["fp"][p])
        _add(jobs_done, one["report"])
        cons_s += one["seconds"]
        if progress:
            progress(f"{conv.sample_id}: {len(conv.qas)} questions, consolidated in {one['seconds']:.1f} s, " + " ".join(
                f"@{b} {_pct(one['rec']['before'][b]):.1f}->{_pct(one['rec']['after'][b]):.1f}" for b in budgets))

    if jobs > 1 and len(convs) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(jobs, len(convs)), mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_one, conv, budgets, settings) for conv in convs]
            for conv, fut in zip(convs, futures, strict=True):  # folded in file order: same result as serial
                fold(conv, fut.result())
    else:
        for conv in convs:
            fold(conv, _one(conv, budgets, settings))
    turns = sum(c.n_turns for c in convs)
    out: dict[str, Any] = {
        p: {
            "recall": {str(b): _pct(rec[p][b]) for b in budgets},
            "per_category": {str(c): {str(b): _pct(v[b]) for b in budgets} for c, v in sorted(cat[p].items())},
            **fp[p],
        }
        for p in PHASES
    }
    out["delta"] = {str(b): round(_pct(rec["after"][b]) - _pct(rec["before"][b]), 2) for b in budgets}
    out.update({
        "consolidate_s": round(cons_s, 2),
        "s_per_1000_turns": round(1000 * cons_s / max(turns, 1), 2),
        "jobs": jobs_done,
        "conversations": len(convs),
        "questions": sum(len(c.qas) for c in convs),
        "turns": turns,
    })
    return out
