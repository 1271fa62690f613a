"""LoCoMo evidence recall at token budgets, through the public SDK.

Per conversation: a fresh embedded store in a temporary folder, one ``Memory.add`` per session (see
``datasets.ingest_locomo``); then for every QA of categories 1-4 and every budget B,
``Memory.search(question, budget_tokens=B)`` is scored with ``evidence.recall_from_hits`` and its context
text (``format_context`` of those hits, which is what ``Memory.context`` returns) is counted in cl100k
tokens.

Result keys: ``recall`` {budget: %}, ``per_category`` {category: {budget: %}}, ``tokens_mean`` {budget:
tokens}, ``add_ms`` (one ``add`` call = one session) and ``search_ms`` {"p50", "p95"}, plus
``add_ms_per_turn``, ``over_budget``, ``conversations``, ``questions``, ``turns``, and ``index``: the
vector sizes summed over the conversations' stores (``vector_bytes()``: float32 and quantized bytes)
and the compressed share of stored turn tokens when the settings denoise.

``embedder``: an embedder instance to use instead of the settings' one (the CLI passes a
``CachedEmbedder`` around MiniLM so the configurations it compares do not embed the same texts again).
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
    embedder: Any = None,
) -> dict[str, Any]:
    """Run the benchmark on a LoCoMo file; ``limit`` takes the first N conversations."""
    from memsvc import Memory
    from memsvc.retrieval.packing import format_context
    from memsvc.tokens import count_tokens

    convs = list(iter_steps(load_locomo(data), 1, limit))
    rec: dict[int, list[float]] = {b: [] for b in budgets}
    cat: dict[int, dict[int, list[float]]] = {}
    toks: dict[int, list[int]] = {b: [] for b in budgets}
    add_s: list[float] = []
    add_turn_s: list[float] = []
    search_s: list[float] = []
    over = 0
    index: dict[str, float] = {}
    components = {"embedder": embedder} if embedder is not None else {}
    for conv in convs:
        with tempfile.TemporaryDirectory(prefix="memsvc-bench-") as d:
            m = Memory(settings, path=d, **components)
            sep = m.settings.retrieval.separator
            try:
                key_of, text_of, took = ingest_locomo(m, conv, conv.sample_id)
                _index_sizes(m, conv.sample_id, index)
                add_s += took
                add_turn_s += [
                    t / len(turns) for t, (_, turns) in zip(took, conv.sessions, strict=True) if turns
                ]
                for qa in conv.qas:
                    for b in budgets:
                        t0 = time.perf_counter()
                        hits = m.search(qa.question, user_id=conv.sample_id, budget_tokens=b)
                        search_s.append(time.perf_counter() - t0)
                        # Memory.context(question, budget_tokens=b) is exactly this text (one search, not two)
                        n = count_tokens(format_context(hits, sep))
                        toks[b].append(n)
                        over += n > b
                        r = recall_from_hits(hits, qa.evidence, key_of, text_of)
                        rec[b].append(r)
                        cat.setdefault(qa.category, {x: [] for x in budgets})[b].append(r)
            finally:
                m.close()
                save = getattr(embedder, "save", None)
                if callable(save):
                    save()
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
        "index": _index_summary(index),
    }


def _index_sizes(m: Any, user: str, acc: dict[str, float]) -> None:
    """Add one store's vector sizes and compressed-token counts to ``acc``."""
    from memsvc.stores import Scope

    svc = m.service
    sizes = getattr(svc.vectors, "vector_bytes", None)
    if callable(sizes):
        for k, v in sizes().items():
            if k not in ("quantized_bytes_per_vector", "ratio"):
                acc[k] = acc.get(k, 0) + v
    rows = svc.sql.units(Scope(svc.tenant, user), sorted(svc.sql.live_unit_ids(Scope(svc.tenant, user))))
    for u in rows.values():
        if u.level == "turn":
            acc["turn_tokens"] = acc.get("turn_tokens", 0) + (u.token_count or 0)
            acc["turn_tokens_compressed"] = acc.get("turn_tokens_compressed", 0) + (u.meta or {}).get(
                "compressed_tokens", u.token_count or 0)


def _index_summary(acc: dict[str, float]) -> dict[str, float]:
    out = dict(acc)
    if acc.get("quantized_points"):
        out["quantized_bytes_per_vector"] = round(acc["quantized_bytes"] / acc["quantized_points"], 2)
        out["ratio"] = round(acc["float32_bytes"] / acc["points"] / out["quantized_bytes_per_vector"], 3)
    if acc.get("turn_tokens"):
        out["turn_tokens_kept"] = round(acc["turn_tokens_compressed"] / acc["turn_tokens"], 4)
    return out
