"""What ``memsvc bench crash`` checks on a store after the kills: recovery, duplicates, orphans.

``check(memory, plan, acks, client_id)`` first records the drift the re-opened store still has
(opening it indexes ``pending`` units), runs one ``reconcile`` pass, then counts over the acknowledged
events:

- recovered: the stored event for the client id has the id the client was given, ``get`` returns its
  text, its turn unit has a vector and a keyword document, and a live episode lists it among its sources;
- duplicates: client ids stored twice, event texts stored twice, events held by two turn units or by two
  live episodes (the same memory indexed twice);
- orphan_vectors: vector (and keyword) ids whose unit SQL does not know.
A random sample of acknowledged events is also looked up by ``search`` with their own text.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

if TYPE_CHECKING:
    from memsvc import Memory
    from memsvc.benchmarks.crash import Plan

__all__ = ["check", "drift", "duplicates"]

_PAYLOAD_INDEXES = frozenset({"tenant", "user", "session", "stream", "level", "start", "end"})


def drift(svc: Any) -> dict[str, int]:
    """SQL <-> index differences right now: units without vector, vectors without unit, pending units."""
    in_sql, in_index = svc.sql.live_unit_ids(), svc.vectors.ids()
    out = {"missing_vectors": len(in_sql - in_index), "orphan_vectors": len(in_index - in_sql),
           "pending": len(svc.sql.unit_ids_by_state(["pending", "stale"]))}
    if svc.lexical is not None:
        in_lex = svc.lexical.ids()
        out.update(missing_lexical=len(in_sql - in_lex), orphan_lexical=len(in_lex - in_sql))
    # payload indexes the embedded shards should have (a kill while creating them left some out)
    out["missing_payload_indexes"] = sum(len(_PAYLOAD_INDEXES - s.payload_indexes())
                                         for s in (svc.vectors, svc.lexical) if hasattr(s, "payload_indexes"))
    return out


def duplicates(svc: Any) -> dict[str, int]:
    """Memories stored or indexed more than once (counted as extra copies)."""
    from memsvc.stores.sql_schema import EventRow, UnitRow, UnitSourceRow

    def extra(s: Any, q: Any) -> int:
        sub = q.having(func.count() > 1).subquery()
        return int(s.scalar(select(func.coalesce(func.sum(sub.c.n - 1), 0))) or 0)

    with svc.sql.session() as s:
        cid = extra(s, select(func.count().label("n")).select_from(EventRow).where(EventRow.client_id.is_not(None))
                    .group_by(EventRow.tenant_id, EventRow.user_id, EventRow.client_id))
        txt = extra(s, select(func.count().label("n")).select_from(EventRow)
                    .group_by(EventRow.tenant_id, EventRow.user_id, EventRow.text))
        per_level = {}
        for level in ("turn", "episode"):
            q = (select(func.count().label("n")).select_from(UnitSourceRow)
                 .join(UnitRow, UnitRow.id == UnitSourceRow.unit_id)
                 .where(UnitRow.level == level, UnitRow.deleted_at.is_(None), UnitRow.status != "superseded")
                 .group_by(UnitSourceRow.event_id))
            per_level[level] = extra(s, q)
    return {"client_ids": cid, "event_texts": txt, "turn_units": per_level["turn"],
            "episode_membership": per_level["episode"]}


def check(m: Memory, plan: Plan, acks: Mapping[int, Sequence[str]], client_id: str, seed: int = 0,
          search_sample: int = 200) -> dict[str, Any]:
    """Count what survived (see the module docstring). ``client_id`` formats a message's client id
    from ``i`` (event number), ``b`` (batch) and ``k`` (position in the batch)."""
    from memsvc.consolidation import reconcile
    from memsvc.exceptions import RecordNotFound

    svc = m.service
    before = drift(svc)
    repair = reconcile(svc)
    after = drift(svc)
    vec_ids = svc.vectors.ids()
    lex_ids = svc.lexical.ids() if svc.lexical is not None else None
    lost: dict[str, int] = {"not_stored": 0, "id_changed": 0, "text": 0, "vector": 0, "lexical": 0, "episode": 0}
    acked: list[tuple[str, str, str]] = []  # (user, event id, text)
    by_user: dict[str, list[tuple[int, int, int]]] = {}
    for b in acks:
        for k, i in enumerate(plan.indexes(b)):
            by_user.setdefault(plan.user(b), []).append((b, k, i))
    recovered = 0
    for user, items in by_user.items():
        scope = svc.scope(user)
        cids = [client_id.format(i=i, b=b, k=k) for b, k, i in items]
        stored = svc.sql.client_ids(scope, cids)
        eps = svc.sql.episodes_of(scope, list(stored.values()))
        for (b, k, i), cid in zip(items, cids, strict=True):
            eid = stored.get(cid)
            if eid is None:
                lost["not_stored"] += 1
                continue
            ok = True
            if eid != acks[b][k]:
                lost["id_changed"] += 1
                ok = False
            try:
                rec = m.get(eid, user_id=user)
                if plan.text(i) not in (rec.text or ""):
                    lost["text"] += 1
                    ok = False
            except RecordNotFound:
                lost["text"] += 1
                ok = False
            if eid not in vec_ids:
                lost["vector"] += 1
                ok = False
            if lex_ids is not None and eid not in lex_ids:
                lost["lexical"] += 1
                ok = False
            if eid not in eps:
                lost["episode"] += 1
                ok = False
            recovered += ok
            acked.append((user, eid, plan.text(i)))
    rng = random.Random(seed)
    sample = rng.sample(acked, min(search_sample, len(acked)))
    found = 0
    for user, eid, text in sample:
        hits = m.search(text, user_id=user, limit=10)
        found += any(h.id == eid or eid in h.source_ids for h in hits)
    dup = duplicates(svc)
    stats = m.stats()
    return {
        "acknowledged": sum(len(plan.indexes(b)) for b in acks),
        "recovered": recovered,
        "duplicates": sum(dup.values()),
        "orphan_vectors": after["orphan_vectors"] + after.get("orphan_lexical", 0),
        "lost": lost,
        "duplicate_kinds": dup,
        "search_sample": len(sample),
        "search_found": found,
        "drift_on_open": before,
        "reconcile": repair,
        "drift_after_reconcile": after,
        "events_stored": stats.get("events", 0),
        "stats": stats,
    }
