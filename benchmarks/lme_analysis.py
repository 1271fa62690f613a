"""LongMemEval ranking analysis on stores ingested once (a development tool, not a test).

Ingesting a LongMemEval-S haystack (~500 turns, many of them long assistant answers) costs most of a
benchmark run on a small machine; ranking and packing changes do not need it again. This tool

1. ``ingest``: adds every selected question's haystack, exactly as ``memsvc bench longmemeval`` and the
   independent scorer do (``datasets.ingest_longmemeval``), into its own persistent folder under
   ``ROOT/<question_id>`` (embeddings remembered in ``ROOT/embed_cache.npz``), with a ``meta.json``
   holding the evidence keys;
2. ``eval``: reopens those stores and only searches, with ``RetrievalConfig`` overrides given as
   ``key=value`` (``--set lexical_weight=0.5``), printing the same recall the bench reports (has_answer
   turns, provenance + coverage) per budget and per question type;
3. ``misses``: for each evidence turn not recalled at a budget, its rank in the full ranking, its score
   parts, role and tokens, and what filled the budget instead.

    python -m memsvc.benchmarks.lme_analysis ingest --data FILE --step 4 --root /work/lme_stores
    python -m memsvc.benchmarks.lme_analysis eval --root /work/lme_stores --set speaker_weight=0.3
    python -m memsvc.benchmarks.lme_analysis misses --root /work/lme_stores --budget 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from memsvc.benchmarks.datasets import (
    ingest_longmemeval,
    iter_steps,
    load_longmemeval,
    parse_longmemeval_date,
)
from memsvc.benchmarks.evidence import recall_from_hits


def _settings(overrides: dict[str, Any] | None = None) -> Any:
    from memsvc.config import Settings

    base = Settings()
    if overrides:
        r = base.retrieval.model_dump()
        r.update(overrides)
        base = Settings.model_validate({**base.model_dump(), "retrieval": r})
    return base


def _embedder(root: Path, settings: Any) -> Any:
    from memsvc.benchmarks.embed_cache import CachedEmbedder
    from memsvc.embedders import EMBEDDERS

    inner = EMBEDDERS.create(settings.embedder.backend, **settings.embedder.options)
    return CachedEmbedder(inner, root / "embed_cache.npz")


def ingest(data: Path, step: int, root: Path, limit: int | None = None) -> None:
    from memsvc import Memory

    root.mkdir(parents=True, exist_ok=True)
    settings = _settings()
    emb = _embedder(root, settings)
    for q in iter_steps(load_longmemeval(data), step, limit):
        if q.abstention:
            continue
        d = root / q.question_id
        if (d / "meta.json").is_file():
            continue
        d.mkdir(exist_ok=True)
        m = Memory(settings, path=d, embedder=emb)
        try:
            ing = ingest_longmemeval(m, q, "u")
        finally:
            m.close()
        meta = {"question_id": q.question_id, "question_type": q.question_type, "question": q.question,
                "question_date": q.question_date, "key_of": ing.key_of, "text_of": ing.text_of,
                "gold": sorted(ing.gold), "session_of": ing.session_of,
                "answer_session_ids": sorted(q.answer_session_ids)}
        (d / "meta.json").write_text(json.dumps(meta))
        emb.save()
        print(f"ingested {q.question_id} ({len(ing.key_of)} turns)", file=sys.stderr, flush=True)


def _stores(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for d in sorted(p for p in root.iterdir() if (p / "meta.json").is_file()):
        out.append((d, json.loads((d / "meta.json").read_text())))
    return out


def _open(d: Path, settings: Any, emb: Any) -> Any:
    from memsvc import Memory

    return Memory(settings, path=d, embedder=emb)


def evaluate(root: Path, budgets: list[int], overrides: dict[str, Any], verbose: bool = False) -> dict[str, Any]:
    settings = _settings(overrides)
    emb = _embedder(root, settings)
    rec: dict[int, list[float]] = {b: [] for b in budgets}
    by_type: dict[str, dict[int, list[float]]] = {}
    for d, meta in _stores(root):
        if not meta["gold"]:
            continue
        m = _open(d, settings, emb)
        try:
            qt = parse_longmemeval_date(meta["question_date"])
            line = []
            for b in budgets:
                hits = m.search(meta["question"], user_id="u", budget_tokens=b, query_time=qt)
                r = recall_from_hits(hits, set(meta["gold"]), meta["key_of"], meta["text_of"])
                rec[b].append(r)
                by_type.setdefault(meta["question_type"], {x: [] for x in budgets})[b].append(r)
                line.append(f"@{b}={100 * r:.0f}")
            if verbose:
                print(meta["question_id"], meta["question_type"], *line, file=sys.stderr, flush=True)
        finally:
            m.close()
    emb.save()

    def pct(xs: list[float]) -> float:
        return round(100 * sum(xs) / len(xs), 2) if xs else 0.0

    return {"recall": {str(b): pct(rec[b]) for b in budgets},
            "per_type": {t: {str(b): pct(v[b]) for b in budgets} for t, v in sorted(by_type.items())},
            "questions": len(rec[budgets[0]])}


def misses(root: Path, budget: int, overrides: dict[str, Any]) -> None:
    from memsvc.tokens import count_tokens

    settings = _settings(overrides)
    emb = _embedder(root, settings)
    filled_roles: Counter[str] = Counter()
    filled_tokens: Counter[str] = Counter()
    miss_ranks: list[int] = []
    for d, meta in _stores(root):
        gold = set(meta["gold"])
        if not gold:
            continue
        m = _open(d, settings, emb)
        try:
            qt = parse_longmemeval_date(meta["question_date"])
            svc = m.service
            scope = svc.scope("u")
            ranking = svc.retriever.retrieve(scope, meta["question"], None, qt, keep=None)
            rank_of: dict[str, tuple[int, Any]] = {}
            for i, h in enumerate(ranking.hits):
                for s in h.source_ids:
                    k = meta["key_of"].get(str(s))
                    if k is not None and k not in rank_of and len(h.source_ids) == 1:
                        rank_of[k] = (i, h)
            packed = m.search(meta["question"], user_id="u", budget_tokens=budget, query_time=qt)
            got = set()
            for e in gold:
                if recall_from_hits(packed, {e}, meta["key_of"], meta["text_of"]) > 0:
                    got.add(e)
            missed = sorted(gold - got)
            print(f"\n== {meta['question_id']} [{meta['question_type']}] {meta['question']}  "
                  f"recalled {len(got)}/{len(gold)} @{budget}")
            for h in packed:
                role = h.text.partition(": ")[0] if len(h.source_ids) == 1 else f"{h.level}x{len(h.source_ids)}"
                filled_roles[role] += 1
                filled_tokens[role] += count_tokens(h.text)
            print("   packed:", ", ".join(
                f"{(h.text.partition(': ')[0] if len(h.source_ids) == 1 else h.level.value)[:4]}"
                f"{count_tokens(h.text)}{'*' if any(meta['key_of'].get(str(s)) in gold for s in h.source_ids) else ''}"
                for h in packed))
            for e in missed:
                txt = meta["text_of"][e]
                if e in rank_of:
                    i, h = rank_of[e]
                    miss_ranks.append(i)
                    comp = {k: v for k, v in h.components.items() if not k.endswith("_raw")}
                    print(f"   MISS {e} rank {i} score {h.score:.3f} tok {count_tokens(h.text)} "
                          f"{h.text.partition(': ')[0]} {comp} dense_raw={h.components.get('dense_raw')}")
                else:
                    miss_ranks.append(10**6)
                    print(f"   MISS {e} unranked tok {count_tokens(txt)}")
                print(f"        {txt[:300]!r}")
            for e in sorted(got):
                print(f"   GOT  {e} rank {rank_of.get(e, (None,))[0]}")
        finally:
            m.close()
    emb.save()
    print("\nfilled by role (units, tokens):", dict(filled_roles), dict(filled_tokens))
    if miss_ranks:
        print("missed ranks median", statistics.median(miss_ranks), sorted(miss_ranks))


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items:
        k, _, v = it.partition("=")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("ingest")
    pi.add_argument("--data", type=Path, required=True)
    pi.add_argument("--step", type=int, default=4)
    pi.add_argument("--limit", type=int)
    pi.add_argument("--root", type=Path, required=True)
    pe = sub.add_parser("eval")
    pe.add_argument("--root", type=Path, required=True)
    pe.add_argument("--budgets", default="1000,2000,4000")
    pe.add_argument("--set", action="append", default=[])
    pe.add_argument("-v", action="store_true")
    pm = sub.add_parser("misses")
    pm.add_argument("--root", type=Path, required=True)
    pm.add_argument("--budget", type=int, default=1000)
    pm.add_argument("--set", action="append", default=[])
    a = p.parse_args(argv)
    if a.cmd == "ingest":
        ingest(a.data, a.step, a.root, a.limit)
    elif a.cmd == "eval":
        res = evaluate(a.root, [int(x) for x in a.budgets.split(",")], _overrides(a.set), a.v)
        print(json.dumps(res, indent=1))
    else:
        misses(a.root, a.budget, _overrides(a.set))


if __name__ == "__main__":
    main()
