"""Summarize: closed chat episodes -> episode summaries -> per-user daily and topic semantic memories.

Episode summaries (level ``summary``) keep at most ``summary_ratio`` of the episode's tokens; daily
memories (level ``semantic``, ``meta.kind = "daily"``) condense the summaries of one day that has two
or more, and topic memories (``meta.kind = "topic"``) the summaries of one topic (cosine to the topic
centroid >= ``topic_threshold``) spread over two or more days, each in ``semantic_tokens``. With
``summaries_replace_episodes`` (default) a summarized episode leaves the vector index and its summary
stands for it (measured on LoCoMo: more evidence per token); the episode stays in SQL. Video scenes
(episodes of a stream) are left to the video pipeline.

Provenance: ``unit_links`` tie a summary to its episode and a semantic memory to its summaries, so a
delete cascades; ``unit_sources`` (what ``Hit.source_ids`` shows) list the events whose substance the
text keeps. Ids are uuid5 over the inputs (episode and its events; member summaries), so running
again, or after a kill, rewrites nothing and duplicates nothing; a day or topic whose members changed
gets a new id and the old memory is replaced in the same pass. Source tokens summarized per user and
run are capped by ``budget_tokens_per_user`` (oldest episodes first; the rest waits for the next run).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from memsvc.compressors.base import Passage, Summary, SummaryRequest
from memsvc.consolidation._common import config, derived_id, index_units, remove_units, store, summarizer
from memsvc.stores import Scope
from memsvc.stores.sql_schema import UnitLinkRow, UnitRow, UnitSourceRow

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["summarize_episodes", "summarize_semantic"]

BATCH = 32


def _unit(svc: MemoryService, scope: Scope, uid: str, level: str, text: str, tokens: int, like: Sequence[UnitRow],
          producer: Any, meta: dict[str, Any]) -> UnitRow:
    return UnitRow(
        id=uid, tenant_id=scope.tenant, user_id=scope.user, level=level,
        session_id=like[0].session_id if len({u.session_id for u in like}) == 1 else None,
        stream_id=like[0].stream_id if len({u.stream_id for u in like}) == 1 else None,
        text=text, start_ts=min(u.start_ts for u in like), end_ts=max(u.end_ts for u in like), status="closed",
        index_state="pending" if text else "none", token_count=tokens, embedder=svc.embedder.name,
        embedder_version=svc.embedder.version, compressor=producer.name, compressor_version=producer.version,
        importance=max(u.importance for u in like), meta=meta,
    )


def _drop_stale(svc: MemoryService, scope: Scope) -> int:
    """Remove summaries whose episode changed after they were written (e.g. a writer process with an
    old cache re-opened and extended it); the episode is summarized again."""
    st = store(svc)
    sums = [u for u in st.live_units(scope, ["summary"]) if (u.meta or {}).get("kind") == "episode_summary"]
    kids = st.children([u.id for u in sums])
    eps = svc.sql.units(scope, sorted({c for cs in kids.values() for c in cs}))
    maybe = {u.id: u for u in sums if any(c not in eps or eps[c].updated_at > u.updated_at for c in kids.get(u.id, []))}
    if not maybe:
        return 0
    srcs = svc.sql.sources(sorted({c for m in maybe for c in kids.get(m, [])}))
    stale = [m for m, u in maybe.items() if any(
        c not in eps or derived_id("members", *srcs.get(c, [])) != (u.meta or {}).get("members_hash")
        for c in kids.get(m, []))]
    return remove_units(svc, scope, stale, "summarize")


def summarize_episodes(svc: MemoryService, scope: Scope) -> dict[str, int]:
    """Summarize closed episodes that have no summary yet, within the user's token budget."""
    cfg = config(svc)
    st = store(svc)
    summ = summarizer(svc, cfg)
    stale = _drop_stale(svc, scope)
    todo: list[UnitRow] = []
    spent = 0
    for ep in st.unsummarized_episodes(scope):
        if todo and spent + ep.token_count > cfg.budget_tokens_per_user:
            break
        todo.append(ep)
        spent += ep.token_count
    written = 0
    for k in range(0, len(todo), BATCH):
        eps = todo[k : k + BATCH]
        srcs = svc.sql.sources([e.id for e in eps])
        eids = sorted({x for e in eps for x in srcs.get(e.id, [])})
        events = svc.sql.events(scope, eids)
        vecs = svc.vectors.fetch(eids)
        reqs = [
            SummaryRequest(
                passages=[Passage(text=events[x].text or "", speaker=events[x].name or events[x].role, source=x,
                                  vector=vecs.get(x)) for x in srcs.get(e.id, []) if x in events and events[x].text],
                budget_tokens=max(16, int(cfg.summary_ratio * e.token_count)), hint=f"{e.start_ts:%Y-%m-%d}",
            )
            for e in eps
        ]
        items = []
        for ep, req, sm in zip(eps, reqs, summ.summarize(reqs), strict=True):
            members = srcs.get(ep.id, [])
            uid = derived_id("episode-summary", scope.tenant, scope.user, ep.id, *members, summ.name, summ.version)
            lines = [req.passages[i].source for i in sm.kept] if sm.extractive else None
            unit = _unit(svc, scope, uid, "summary", sm.text, sm.tokens, [ep], summ,
                         {"kind": "episode_summary", "line_sources": lines, "episode_tokens": ep.token_count,
                          "members_hash": derived_id("members", *members)})

            def unchanged(s: Any, ep_id: str = ep.id, members: list[str] = members) -> bool:
                return bool(st.live_ids(s, [ep_id])) and st.source_sets(s, [ep_id]).get(ep_id, []) == members

            items.append((unit, [UnitSourceRow(unit_id=uid, event_id=x, position=i) for i, x in enumerate(sm.sources)],
                          [UnitLinkRow(parent_id=uid, child_id=ep.id)], unchanged))
        done = st.write_many(items)  # one transaction per batch
        written += len(done)
        index_units(svc, done)
    replaced = 0
    if cfg.summaries_replace_episodes:  # from the state, not this run: a killed run is finished here
        index_units(svc, [u for u in st.live_units(scope, ["summary"]) if u.index_state in ("pending", "stale")])
        eps_done = st.summarized_indexed_episodes(scope)
        svc.sql.set_index_state(eps_done, "none")
        svc.vectors.delete(eps_done)
        if svc.lexical is not None:
            svc.lexical.delete(eps_done)
        replaced = len(eps_done)
    return {"episode_summaries": written, "summarized_tokens": spent if todo else 0, "stale_summaries": stale,
            "episodes_replaced": replaced}


def _passages(summary: UnitRow, vecs: dict[str, Any]) -> list[Passage]:
    lines = summary.text.split("\n")
    mapped = (summary.meta or {}).get("line_sources")
    if mapped and len(mapped) == len(lines):
        return [Passage(text=t, source=s, vector=vecs.get(s)) for t, s in zip(lines, mapped, strict=True)]
    return [Passage(text=summary.text, source=f"unit:{summary.id}", vector=vecs.get(summary.id))]


def _topics(summaries: list[UnitRow], vecs: dict[str, np.ndarray], threshold: float) -> list[list[UnitRow]]:
    """Greedy single-pass clustering in time order (deterministic for a given set of summaries)."""
    cents: list[np.ndarray] = []
    groups: list[list[UnitRow]] = []
    for u in summaries:
        v = np.asarray(vecs[u.id], dtype=np.float32)
        if cents:
            mat = np.stack([c / max(float(np.linalg.norm(c)), 1e-9) for c in cents])
            sims = mat @ v
            j = int(np.argmax(sims))
            if float(sims[j]) >= threshold:
                cents[j] = cents[j] + v
                groups[j].append(u)
                continue
        cents.append(v.copy())
        groups.append([u])
    return [g for g in groups if len({u.start_ts.date() for u in g}) >= 2]


def summarize_semantic(svc: MemoryService, scope: Scope) -> dict[str, int]:
    """(Re)build the user's daily and topic memories from the current episode summaries."""
    cfg = config(svc)
    st = store(svc)
    summ = summarizer(svc, cfg)
    sums = [u for u in st.live_units(scope, ["summary"]) if u.text and (u.meta or {}).get("kind") == "episode_summary"]
    mark = derived_id("semantic-input", summ.name, summ.version, str(cfg.topic_threshold), str(cfg.semantic_tokens),
                      *sorted(u.id for u in sums))
    if st.get_state(scope.tenant, scope.user, "semantic")[0] == mark:
        return {"daily_memories": 0, "topic_memories": 0, "semantic_replaced": 0}
    existing = {u.id: u for u in st.live_units(scope, ["semantic"]) if (u.meta or {}).get("kind") in ("daily", "topic")}
    wanted: dict[str, tuple[str, str, list[UnitRow]]] = {}
    by_day: dict[str, list[UnitRow]] = defaultdict(list)
    for u in sums:
        by_day[u.start_ts.date().isoformat()].append(u)
    for day, members in by_day.items():
        if len(members) >= 2 and "daily" in cfg.semantic_memories:
            wanted[derived_id("daily", scope.tenant, scope.user, day, *sorted(m.id for m in members), summ.name,
                              summ.version)] = ("daily", day, members)
    vecs: dict[str, Any] = {}
    if sums and "topic" in cfg.semantic_memories:
        vecs = svc.vectors.fetch([u.id for u in sums])
        missing = [u for u in sums if u.id not in vecs]
        if missing:
            vecs.update(zip([u.id for u in missing], svc.embedder.embed([u.text for u in missing]), strict=True))
        for members in _topics(sums, vecs, cfg.topic_threshold):
            key = f"{members[0].start_ts:%Y-%m-%d}..{members[-1].end_ts:%Y-%m-%d}"
            wanted[derived_id("topic", scope.tenant, scope.user, *sorted(m.id for m in members), summ.name,
                              summ.version)] = ("topic", key, members)
    stale = sorted(set(existing) - set(wanted))
    removed = remove_units(svc, scope, stale, "summarize")
    new = [(uid, w) for uid, w in sorted(wanted.items()) if uid not in existing]
    all_srcs = svc.sql.sources([m.id for _, (_, _, ms) in new for m in ms]) if new else {}
    seq = {e.id: e.seq for e in svc.sql.events(scope, sorted({x for v in all_srcs.values() for x in v})).values()}

    def reading_order(u: UnitRow) -> tuple[Any, ...]:
        return (u.start_ts, min((seq.get(x, 0) for x in all_srcs.get(u.id, [])), default=0), u.id)

    new = [(uid, (kind, key, sorted(members, key=reading_order))) for uid, (kind, key, members) in new]
    line_ids = sorted({x for _, (_, _, ms) in new for m in ms for x in (m.meta or {}).get("line_sources") or []})
    pvecs = {**vecs, **svc.vectors.fetch(line_ids)} if new else {}
    reqs: list[SummaryRequest] = []
    for _, (kind, key, members) in new:
        passages = [p for m in members for p in _passages(m, pvecs)]
        reqs.append(SummaryRequest(passages=passages, budget_tokens=cfg.semantic_tokens, hint=f"{kind} {key}"))
    outs: list[Summary] = summ.summarize(reqs) if reqs else []
    done: list[UnitRow] = []
    for (uid, (kind, key, members)), sm in zip(new, outs, strict=True):
        events: list[str] = []
        for s in sm.sources:
            events += all_srcs.get(s[5:], []) if s.startswith("unit:") else [s]
        unit = _unit(svc, scope, uid, "semantic", sm.text, sm.tokens, members, summ,
                     {"kind": kind, "key": key, "members": len(members)})
        member_ids = [m.id for m in members]

        def present(s: Any, member_ids: list[str] = member_ids) -> bool:
            return len(st.live_ids(s, member_ids)) == len(member_ids)

        if st.write_derived(
            [unit], [UnitSourceRow(unit_id=uid, event_id=e, position=i) for i, e in enumerate(dict.fromkeys(events))],
            [UnitLinkRow(parent_id=uid, child_id=m) for m in member_ids], check=present,
        ):
            done.append(unit)
    index_units(svc, done)
    if len(done) == len(new):
        st.set_state(scope.tenant, scope.user, "semantic", mark)
    kinds = [wanted[u.id][0] for u in done]
    return {"daily_memories": kinds.count("daily"), "topic_memories": kinds.count("topic"), "semantic_replaced": removed}
