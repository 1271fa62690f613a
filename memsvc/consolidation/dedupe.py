"""Merge / dedupe: exact duplicates from retried writes are removed; near-duplicates are merged.

Exact: two turns of one user with the same session, speaker, text and timestamp are one message
written twice (a client retried ``add`` without a client id). The later copy is deleted like
``Memory.delete`` does (its episode is rebuilt, summaries built on it go). Short utterances (fewer
than ``min_words`` content words: "Thanks!", "Bye") are left alone, since people do repeat those.

Near: turns of one user and speaker whose vectors have cosine >= ``dedupe_threshold`` and whose times
are within ``dedupe_window_days`` are merged into one ``semantic`` unit (``meta.kind = "merged"``)
whose text keeps every member's substance and whose sources are all members' events. The members
stay in SQL, ``superseded`` with ``meta.merged_into`` and out of the index; deleting the merged unit
(or one member's event) lets reconcile restore the others.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from memsvc.compressors.summary._text import content_words
from memsvc.consolidation._common import config, derived_id, index_units, store
from memsvc.stores import Scope, VectorFilter
from memsvc.stores.sql_schema import UnitLinkRow, UnitRow, UnitSourceRow
from memsvc.tokens import count_tokens

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["dedupe_exact", "merge_near_duplicates"]


def _hash(u: UnitRow) -> str:
    key = f"{u.level}\x1f{u.session_id or ''}\x1f{u.stream_id or ''}\x1f{u.start_ts.isoformat()}\x1f{u.text}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def dedupe_exact(svc: MemoryService, scope: Scope, min_words: int = 3) -> int:
    """Delete later copies of turns written twice; returns how many copies were removed."""
    st = store(svc)
    while rows := st.unhashed(scope, "turn"):
        st.set_hashes({u.id: _hash(u) for u in rows})
    removed = 0
    for group in st.duplicate_turns(scope):
        units = svc.sql.units(scope, group)
        if not units or len(content_words(next(iter(units.values())).text)) < min_words:
            continue
        for dup in group[1:]:
            svc.delete(dup, scope.user)
            removed += 1
    return removed


def _merged_text(members: list[UnitRow]) -> str:
    """The most informative member, plus any member whose words it does not mostly hold."""
    order = sorted(members, key=lambda u: (-len(content_words(u.text)), u.start_ts, u.id))
    kept = [order[0]]
    have = set(content_words(order[0].text))
    for u in order[1:]:
        w = content_words(u.text)
        if w and len(w & have) / len(w) < 0.8:
            kept.append(u)
            have |= w
    return "\n".join(u.text for u in sorted(kept, key=lambda u: (u.start_ts, u.id)))


def _speaker(text: str) -> str:
    return text.split(":", 1)[0]


def _restore_orphans(svc: MemoryService, scope: Scope) -> int:
    """Members whose merged unit is gone (deleted, or cascaded away) come back into the index."""
    st = store(svc)
    sup = [u.id for u in st.live_units(scope, ["turn"], ["superseded"])]
    if not sup:
        return 0
    ups = st.parents(sup)
    live = set(svc.sql.units(scope, sorted({p for ps in ups.values() for p in ps})))
    orphans = [i for i in sup if not set(ups.get(i, ())) & live]
    st.update_units({i: {"status": "closed", "index_state": "pending"} for i in orphans})
    if orphans:
        svc.repair()
    return len(orphans)


def merge_near_duplicates(svc: MemoryService, scope: Scope) -> int:
    """Merge near-duplicate turns of one user; returns how many merged units were written."""
    cfg = config(svc)
    st = store(svc)
    _restore_orphans(svc, scope)
    turns = {u.id: u for u in st.live_units(scope, ["turn"], ["closed"])
             if u.stream_id is None and len(content_words(u.text)) >= 3}  # video frames: the video pipeline's
    merged = {u.id: u for u in st.live_units(scope, ["semantic"]) if (u.meta or {}).get("kind") == "merged"}
    if len(turns) < 2 and not merged:
        return 0
    old_members = {m: set(c) for m, c in st.children(sorted(merged)).items()}
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for mem in old_members.values():  # earlier merges stay together
        first, *rest = sorted(mem)
        for m in rest:
            parent[find(m)] = find(first)
    mark_s, _ = st.get_state(scope.tenant, scope.user, "merge")
    mark = int(mark_s or 0) if int(mark_s or 0) <= st.max_seq(scope) else 0
    fresh = st.turns_after(scope, mark, 10**9)
    ids = sorted(u for u, *_ in fresh if u in turns)  # new turns meet old ones through the index
    vecs = svc.vectors.fetch(ids)
    missing = [i for i in ids if i not in vecs]
    if missing:  # a worker without the shared index: embed from the SQL text
        vecs.update(zip(missing, svc.embedder.embed([turns[i].text for i in missing]), strict=True))
    window = cfg.dedupe_window_days * 86_400
    for start in range(0, len(ids), 256):
        block = ids[start : start + 256]
        found = svc.vectors.search(scope, np.stack([vecs[i] for i in block]), 8,
                                   VectorFilter(levels=("turn", "semantic")))
        for a, hits in zip(block, found, strict=True):
            ua = turns[a]
            for b, score in hits:
                ub = turns.get(b) or merged.get(b)
                if ub is None or b == a or score < cfg.dedupe_threshold or _speaker(ub.text) != _speaker(ua.text):
                    continue
                if abs((ua.start_ts - ub.start_ts).total_seconds()) > window:
                    continue
                other = sorted(old_members.get(b, ()))[:1] if b in merged else [b]
                for o in other:
                    parent[find(a)] = find(o)
    groups: dict[str, set[str]] = defaultdict(set)
    for x in list(parent):
        groups[find(x)].add(x)
    wanted = {derived_id("merged", scope.tenant, scope.user, *sorted(g)): g for g in groups.values() if len(g) > 1}
    members = sorted({i for g in wanted.values() for i in g})
    rows = svc.sql.units(scope, members) if members else {}
    srcs = svc.sql.sources(members) if members else {}
    written: list[UnitRow] = []
    for uid, g in sorted(wanted.items()):
        ms = [rows[i] for i in sorted(g) if i in rows]
        if uid in merged or len(ms) < 2:
            continue
        text = _merged_text(ms)
        unit = UnitRow(
            id=uid, tenant_id=scope.tenant, user_id=scope.user, level="semantic", session_id=ms[0].session_id,
            text=text, start_ts=min(m.start_ts for m in ms), end_ts=max(m.end_ts for m in ms), status="closed",
            index_state="pending", token_count=count_tokens(text), embedder=svc.embedder.name,
            embedder_version=svc.embedder.version, compressor="merge", compressor_version="1",
            importance=max(m.importance for m in ms), pinned=any(m.pinned for m in ms),
            meta={"kind": "merged", "members": len(ms)},
        )
        events = dict.fromkeys(e for m in ms for e in srcs.get(m.id, []))
        member_ids = [m.id for m in ms]

        def check(s: Any, member_ids: list[str] = member_ids) -> bool:
            return len(st.live_ids(s, member_ids)) == len(member_ids)

        if st.write_derived([unit], [UnitSourceRow(unit_id=uid, event_id=e, position=k) for k, e in enumerate(events)],
                            [UnitLinkRow(parent_id=uid, child_id=m) for m in member_ids], check=check):
            written.append(unit)
    need = sorted({i for u in written for i in wanted[u.id]} - set(vecs))
    vecs.update(svc.vectors.fetch(need))
    # members of every wanted merge leave the index; members of merges no longer wanted come back
    stale = sorted(set(merged) - set(wanted))
    freed = sorted({m for mid in stale for m in old_members.get(mid, ())} - set(members))
    newly = [i for i in members if i in rows and (rows[i].status, rows[i].index_state) != ("superseded", "none")]
    st.update_units({i: {"status": "superseded", "index_state": "none"} for i in newly})
    st.update_units({i: {"status": "closed", "index_state": "pending"} for i in freed})
    svc.sql.delete_units(stale, scope)
    svc.vectors.delete(stale + members)
    if svc.lexical is not None:
        svc.lexical.delete(stale + members)
    svc.notify("deleted", scope, stale, "merge")
    svc.notify("evicted", scope, newly, "merge")
    if written:
        index_units(svc, written, np.stack([
            np.mean(np.stack([np.asarray(vecs[i]) for i in sorted(wanted[u.id]) if i in vecs] or
                             [svc.embedder.embed([u.text])[0]]), axis=0) for u in written]))
    if freed:
        svc.repair()
    if fresh:
        st.set_state(scope.tenant, scope.user, "merge", str(fresh[-1][1]))
    return len(written)
