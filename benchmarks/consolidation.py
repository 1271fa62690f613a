"""Consolidation benchmark on LoCoMo: units, stored tokens and evidence recall before/after one pass.

    python -m memsvc.benchmarks.consolidation --data /work/shared/data/locomo/locomo_dev.json \
        --evidence /work/shared/tools/evidence.py [--budgets 500,1000,2000] [--out FILE]

Each conversation is ingested through ``Memory.add`` (one user per conversation, the session date as
the turn time) into a fresh embedded store; recall is scored with the independent scorer in
``evidence.py`` (a returned unit must list the evidence turn among its sources AND hold half of its
content words). Then ``Memory.consolidate()`` runs once and everything is measured again.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _load(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("evidence", path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _footprint(m: Any, user: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from memsvc.stores.sql_schema import UnitRow

    svc = m.service
    with svc.sql.session() as s:
        q = select(UnitRow.level, func.count(), func.sum(UnitRow.token_count)).where(
            UnitRow.tenant_id == svc.tenant, UnitRow.user_id == user, UnitRow.deleted_at.is_(None),
            UnitRow.index_state != "none").group_by(UnitRow.level)
        rows = list(s.execute(q))
    out = {f"units_{lvl}": int(n) for lvl, n, _ in rows}
    out["units"] = sum(int(n) for _, n, _ in rows)
    out["tokens"] = sum(int(t or 0) for *_, t in rows)
    return out


def _recall(ev: Any, m: Any, cid: str, qas: list[Any], dia_of: dict[str, str], text_of: dict[str, str],
            budgets: list[int]) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {b: [] for b in budgets}
    for q, evid, _cat in qas:
        for b in budgets:
            hits = m.search(q, user_id=cid, budget_tokens=b)
            out[b].append(ev.recall_from_hits(hits, evid, dia_of, text_of))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--evidence", required=True, help="path of the independent scorer (evidence.py)")
    ap.add_argument("--budgets", default="1000")
    ap.add_argument("--limit", type=int, default=0, help="only the first N conversations")
    ap.add_argument("--settings", default="{}", help="JSON overrides for Settings")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    from memsvc import Memory, Settings

    ev = _load(a.evidence)
    budgets = [int(b) for b in a.budgets.split(",")]
    data = ev.load_locomo(a.data)[: a.limit or None]
    before: dict[int, list[float]] = {b: [] for b in budgets}
    after: dict[int, list[float]] = {b: [] for b in budgets}
    fp_b: dict[str, int] = {}
    fp_a: dict[str, int] = {}
    turns = 0
    cons_s = 0.0
    reports = []
    for cid, sessions, qas in data:
        with tempfile.TemporaryDirectory() as d:
            m = Memory(Settings(data_dir=Path(d), **json.loads(a.settings)))
            dia_of, text_of = ev.ingest_locomo(m, cid, sessions)
            turns += len(dia_of)
            for k, v in _footprint(m, cid).items():
                fp_b[k] = fp_b.get(k, 0) + v
            for b, r in _recall(ev, m, cid, qas, dia_of, text_of, budgets).items():
                before[b] += r
            t0 = time.perf_counter()
            reports.append(m.consolidate())
            cons_s += time.perf_counter() - t0
            for k, v in _footprint(m, cid).items():
                fp_a[k] = fp_a.get(k, 0) + v
            for b, r in _recall(ev, m, cid, qas, dia_of, text_of, budgets).items():
                after[b] += r
            m.close()
        print(f"{cid}: done", file=sys.stderr)
    res = {
        "conversations": len(data), "turns": turns, "questions": len(before[budgets[0]]),
        "before": {"recall": {str(b): round(100 * sum(v) / len(v), 2) for b, v in before.items()}, **fp_b},
        "after": {"recall": {str(b): round(100 * sum(v) / len(v), 2) for b, v in after.items()}, **fp_a},
        "consolidate_s": round(cons_s, 2), "s_per_1000_turns": round(1000 * cons_s / max(turns, 1), 2),
        "jobs": {k: sum(r.get(k, 0) for r in reports) for k in reports[0] if isinstance(reports[0][k], int)},
    }
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
