"""LoCoMo evidence recall at token budgets, through the public SDK.

Per conversation: a fresh embedded store in a temporary folder, one ``Memory.add`` per session (see
``datasets.ingest_locomo``); then for every QA of categories 1-4 and every budget B,
``Memory.search(question, budget_tokens=B)`` is scored with ``evidence.recall_from_hits`` and
``Memory.context(question, budget_tokens=B)`` is counted in cl100k tokens.

Result keys: ``recall`` {budget: %}, ``per_category`` {category: {budget: %}}, ``tokens_mean`` {budget:
tokens}, ``add_ms`` (one ``add`` call = one session) and ``search_ms`` {"p50", "p95"}, plus
``add_ms_per_turn``, ``over_budget``, ``conversations``, ``questions``, ``turns``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from memsvc.benchmarks.datasets import ingest_locomo, iter_steps, load_locomo
from memsvc.benchmarks.evidence import recall_from_hits
from memsvc.benchmarks.results import percentiles

__all__ = ["run_locomo"]

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


def _pct(xs: Sequence[float]) -> float:
    return round(100 * sum(xs) / len(xs), 2) if xs else 0.0


def run_locomo(
    data: str | Path,
    budgets: Sequence[int] = (500, 1000, 2000, 4000),
    settings: Any = None,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark on a LoCoMo file; ``limit`` takes the first N conversations."""
    from memsvc import Memory
    from memsvc.tokens import count_tokens

    convs = list(iter_steps(load_locomo(data), 1, limit))
    rec: dict[int, list[float]] = {b: [] for b in budgets}
    cat: dict[int, dict[int, list[float]]] = {}
    toks: dict[int, list[int]] = {b: [] for b in budgets}
    add_s: list[float] = []
    add_turn_s: list[float] = []
    search_s: list[float] = []
    over = 0
    for conv in convs:
        with tempfile.TemporaryDirectory(prefix="memsvc-bench-") as d:
            m = Memory(settings, path=d)
            try:
                key_of, text_of, took = ingest_locomo(m, conv, conv.sample_id)
                add_s += took
                add_turn_s += [
                    t / len(turns) for t, (_, turns) in zip(took, conv.sessions, strict=True) if turns
                ]
                for qa in conv.qas:
                    for b in budgets:
                        t0 = time.perf_counter()
                        hits = m.search(qa.question, user_id=conv.sample_id, budget_tokens=b)
                        search_s.append(time.perf_counter() - t0)
                        n = count_tokens(m.context(qa.question, user_id=conv.sample_id, budget_tokens=b))
                        toks[b].append(n)
                        over += n > b
                        r = recall_from_hits(hits, qa.evidence, key_of, text_of)
                        rec[b].append(r)
                        cat.setdefault(qa.category, {x: [] for x in budgets})[b].append(r)
            finally:
                m.close()
        if progress:
            progress(
                f"{conv.sample_id}: {len(conv.qas)} questions, "
                + " ".join(f"@{b}={_pct(rec[b]):.1f}" for b in budgets)
            )
    return {
        "recall": {str(b): _pct(rec[b]) for b in budgets},
        "per_category": {str(c): {str(b): _pct(cat[c][b]) for b in budgets} for c in sorted(cat)},
        "tokens_mean": {str(b): round(sum(toks[b]) / len(toks[b]), 1) if toks[b] else 0.0 for b in budgets},
        "add_ms": percentiles(add_s),
        "search_ms": percentiles(search_s),
        "add_ms_per_turn": percentiles(add_turn_s),
        "over_budget": over,
        "conversations": len(convs),
        "questions": sum(len(c.qas) for c in convs),
        "turns": sum(c.n_turns for c in convs),
        "category_names": {str(c): CATEGORIES.get(c, "?") for c in sorted(cat)},
    }
