"""LongMemEval-S retrieval recall at token budgets, through the public SDK.

Per question (every ``step``-th, abstention ``_abs`` questions skipped): a fresh embedded store in a
temporary folder holds its own haystack as one user, each session added with its haystack date
(``datasets.ingest_longmemeval``); then for every budget B,
``Memory.search(question, budget_tokens=B, query_time=question_date)`` is scored:

- ``recall``: share of ``has_answer`` turns recalled (provenance + coverage, ``evidence.recall_from_hits``),
  averaged over questions; questions without any ``has_answer`` turn are skipped (``skipped_no_gold``).
- ``recall_all_sessions``: share of questions for which every answer session is touched, i.e. at least
  one of its turns is recalled by the same rule (``evidence.groups_touched``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from memsvc.benchmarks.datasets import (
    ingest_longmemeval,
    iter_steps,
    load_longmemeval,
    parse_longmemeval_date,
)
from memsvc.benchmarks.evidence import groups_touched, recall_from_hits
from memsvc.benchmarks.results import percentiles

__all__ = ["run_longmemeval"]


def _pct(xs: Sequence[float]) -> float:
    return round(100 * sum(xs) / len(xs), 2) if xs else 0.0


def run_longmemeval(
    data: str | Path,
    budgets: Sequence[int] = (1000, 2000, 4000),
    settings: Any = None,
    step: int = 1,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    embedder: Any = None,
) -> dict[str, Any]:
    """Run the benchmark; ``step`` keeps every S-th question, ``limit`` the first N of those;
    ``embedder``: an embedder instance to use instead of the settings' one (e.g. a ``CachedEmbedder``)."""
    from memsvc import Memory
    from memsvc.tokens import count_tokens

    questions = list(iter_steps(load_longmemeval(data), step, limit))
    rec: dict[int, list[float]] = {b: [] for b in budgets}
    sess: dict[int, list[float]] = {b: [] for b in budgets}
    by_type: dict[str, dict[int, list[float]]] = {}
    toks: dict[int, list[int]] = {b: [] for b in budgets}
    add_s: list[float] = []
    search_s: list[float] = []
    skipped_abs = skipped_gold = over = turns = 0
    for q in questions:
        if q.abstention:
            skipped_abs += 1
            continue
        with tempfile.TemporaryDirectory(prefix="memsvc-bench-") as d:
            m = Memory(settings, path=d, **({"embedder": embedder} if embedder is not None else {}))
            try:
                ing = ingest_longmemeval(m, q, "u")
                add_s += ing.add_seconds
                turns += len(ing.key_of)
                if not ing.gold:
                    skipped_gold += 1
                    continue
                want = {s for s in q.answer_session_ids if s in set(ing.session_of.values())}
                qt = parse_longmemeval_date(q.question_date)
                for b in budgets:
                    t0 = time.perf_counter()
                    hits = m.search(q.question, user_id="u", budget_tokens=b, query_time=qt)
                    search_s.append(time.perf_counter() - t0)
                    n = count_tokens(m.context(q.question, user_id="u", budget_tokens=b, query_time=qt))
                    toks[b].append(n)
                    over += n > b
                    r = recall_from_hits(hits, ing.gold, ing.key_of, ing.text_of)
                    rec[b].append(r)
                    by_type.setdefault(q.question_type, {x: [] for x in budgets})[b].append(r)
                    got = groups_touched(hits, ing.key_of, ing.text_of, ing.session_of)
                    sess[b].append(float(want <= got))
            finally:
                m.close()
                save = getattr(embedder, "save", None)
                if save is not None:
                    save()
        if progress:
            progress(f"{q.question_id}: " + " ".join(f"@{b}={_pct(rec[b]):.1f}" for b in budgets))
    return {
        "recall": {str(b): _pct(rec[b]) for b in budgets},
        "recall_all_sessions": {str(b): _pct(sess[b]) for b in budgets},
        "per_type": {t: {str(b): _pct(v[b]) for b in budgets} for t, v in sorted(by_type.items())},
        "tokens_mean": {str(b): round(sum(toks[b]) / len(toks[b]), 1) if toks[b] else 0.0 for b in budgets},
        "add_ms": percentiles(add_s),
        "search_ms": percentiles(search_s),
        "over_budget": over,
        "questions": len(rec[budgets[0]]) if budgets else 0,
        "skipped_abstention": skipped_abs,
        "skipped_no_gold": skipped_gold,
        "turns": turns,
    }
