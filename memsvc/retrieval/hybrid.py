"""Hybrid semantic-temporal ranking: dense + BM25 candidates at the turn and episode levels, fused.

    HybridRetriever

For a query the retriever

1. parses its time expressions against ``query_time`` (``temporal.parse_query``);
2. gathers candidates: dense (MiniLM cosine) and lexical (BM25) over turns, BM25 over each turn's
   *context* (the turn with the turns just before it: a question and its answer score together), dense
   and BM25 over episodes, and, when the query states a time, dense and BM25 again inside that window;
3. scores each turn as a weighted sum of normalised parts (score fusion; each part is 1 for the best
   candidate of its list): ``dense`` ((cos - floor) / (best cos - floor)), ``lexical`` (BM25 / best),
   ``context`` (the best context window holding the turn), ``episode`` (its episode's dense + lexical
   score: the topic it belongs to), ``speaker`` (the query names the turn's speaker), ``role`` (in a
   user-assistant memory, the turn is by the party the question is about: the user for "where did I
   ...", the assistant for "what did you recommend"), ``temporal`` (1 inside the asked time, decaying
   outside: MRAG, Zhang et al. 2024), ``recency`` (for "current / latest" questions) and ``video`` ("at
   minute 12 of the video").

Every hit carries these parts in ``components`` (plus the raw cosine / BM25 as ``*_raw``). Ties break by
position in the user's history, then unit id, so equal input ranks identically (even in another store,
where the random ids differ). Weights live in ``RetrievalConfig``; the defaults were
tuned on the LoCoMo development set, ``role_weight`` on LongMemEval-S dev (docs/RETRIEVAL_NOTES.md).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from memsvc._types import Level
from memsvc.compressors.denoise import COMPRESSED_TEXT
from memsvc.config import RetrievalConfig
from memsvc.embedders import Embedder
from memsvc.models import Hit
from memsvc.retrieval.temporal import TimeConstraint, parse_query, temporal_score
from memsvc.stores import LexicalIndex, Scope, VectorFilter, VectorStore
from memsvc.stores.sql import SQLRecordStore, UnitHead, UnitView

__all__ = ["HybridRetriever", "Ranking", "query_party"]

_TURN = Level.TURN.value
_EPISODE = Level.EPISODE.value
_CONTEXT_TURNS = 4  # memsvc.pipeline.CONTEXT_TURNS (not imported: the pipeline imports retrieval)


@dataclass
class Ranking:
    """Ranked hits plus what the ranker understood of the query."""

    hits: list[Hit]
    constraint: TimeConstraint
    episodes: dict[str, Hit] = field(default_factory=dict)
    """Episode hits of the candidates' episodes, by id (the packer may pick a whole episode)."""
    episode_of: dict[str, str] = field(default_factory=dict)
    """Turn unit id -> id of the episode holding it (for the candidates)."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    """Wall time of each stage of this retrieval (``embed``, ``dense``, ``lexical``, ``sql``, ...), ms."""


class _Stopwatch:
    """Accumulates wall time per stage: ``with sw("dense"): ...``."""

    __slots__ = ("ms", "_stage", "_t0")

    def __init__(self) -> None:
        self.ms: dict[str, float] = defaultdict(float)

    def __call__(self, stage: str) -> _Stopwatch:
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.ms[self._stage] += (time.perf_counter() - self._t0) * 1000.0

    def result(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.ms.items()}


def _norm_dense(found: Sequence[tuple[str, float]], floor: float) -> dict[str, float]:
    if not found:
        return {}
    top = max(s for _, s in found)
    span = max(top - floor, 1e-6)
    return {u: max(0.0, (s - floor) / span) for u, s in found}


def _norm_lexical(found: Sequence[tuple[str, float]]) -> dict[str, float]:
    if not found:
        return {}
    top = max(s for _, s in found)
    return {u: s / top for u, s in found} if top > 0 else {}


class HybridRetriever:
    """Dense + lexical + temporal ranking over every level of one user's memory."""

    def __init__(
        self,
        sql: SQLRecordStore,
        vectors: VectorStore,
        embedder: Embedder,
        lexical: LexicalIndex | None = None,
        config: RetrievalConfig | None = None,
        compressed_text: bool = False,
    ) -> None:
        self.sql = sql
        self.vectors = vectors
        self.embedder = embedder
        self.lexical = lexical
        self.cfg = config or RetrievalConfig()
        self.compressed_text = compressed_text
        """Hits carry a unit's compressed text (``meta.compressed_text``) where it has one."""

    def hydrate(self, scope: Scope, found: Sequence[tuple[str, float]], component: str) -> list[Hit]:
        """(id, score) pairs from another index (e.g. the video frame index) as hits, in that order;
        ids unknown to SQL, outside the scope or no longer live are dropped."""
        rows = self.sql.unit_views(scope, [i for i, _ in found])
        srcs = self.sql.sources(list(rows), scope)
        now = datetime.now(UTC)
        hits = []
        for uid, score in found:
            r = rows.get(uid)
            if r is None or r.status in ("superseded", "deleted"):
                continue
            comp = {component: score}
            if r.valid_to is not None and r.valid_to <= now:  # superseded by a newer fact: rank below
                comp["validity"] = -(1.0 - self.cfg.superseded_weight) * score
            hits.append(self._hit(r, srcs.get(uid, []), comp, {}, None))
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits

    # -- candidate lists ------------------------------------------------------------------------------
    def _time_filter(self, flt: VectorFilter, tc: TimeConstraint) -> VectorFilter | None:
        if not tc.spans:
            return None
        lo, hi = tc.window()
        slack = timedelta(days=3)
        tf = (lo - slack).timestamp() if lo else None
        tt = (hi + slack).timestamp() if hi else None
        if flt.time_from is not None:
            tf = flt.time_from if tf is None else max(tf, flt.time_from)
        if flt.time_to is not None:
            tt = flt.time_to if tt is None else min(tt, flt.time_to)
        return VectorFilter(levels=flt.levels, session=flt.session, stream=flt.stream, time_from=tf, time_to=tt)

    @staticmethod
    def _level(flt: VectorFilter, level: str) -> VectorFilter:
        return VectorFilter(levels=(level,), session=flt.session, stream=flt.stream, time_from=flt.time_from,
                            time_to=flt.time_to)

    def _dense(self, scope: Scope, qv: np.ndarray, flt: VectorFilter, level: str, k: int,
               sw: _Stopwatch) -> list[tuple[str, float]]:
        with sw("dense"):
            return self.vectors.search(scope, qv, k, self._level(flt, level))[0]

    def _lex(self, scope: Scope, query: str, flt: VectorFilter, level: str, k: int, field: str,
             sw: _Stopwatch) -> list[tuple[str, float]]:
        if self.lexical is None:
            return []
        with sw("lexical"):
            return self.lexical.search(scope, [query], k, self._level(flt, level), field=field)[0]

    # -- ranking --------------------------------------------------------------------------------------
    def retrieve(
        self, scope: Scope, query: str, flt: VectorFilter | None = None, query_time: datetime | None = None,
        keep: int | None = None,
    ) -> Ranking:
        """Hits ranked best first (ties by position, then id), with ``components`` holding each score
        part; only the ``keep`` best when given (all candidates are scored either way)."""
        cfg = self.cfg
        sw = _Stopwatch()
        t_start = time.perf_counter()
        flt = flt or VectorFilter()
        with sw("parse"):
            tc = parse_query(query, query_time or datetime.now(UTC))
        levels = tuple(flt.levels or (_TURN, _EPISODE))
        main = _TURN if _TURN in levels else levels[0]
        # a short answer (``keep`` hits) needs fewer candidates per list than a 4,000-token context
        c = cfg.candidates if keep is None else min(cfg.candidates, max(64, 2 * keep))
        tflt = self._time_filter(flt, tc)
        with_ctx = main == _TURN and cfg.context_weight > 0 and self.lexical is not None
        with_eps = main == _TURN and _EPISODE in levels and cfg.episode_weight > 0
        k_ep = max(10, c // 4)

        with sw("embed"):
            qv = self.embedder.embed([query])
        lex = self._lex(scope, query, flt, main, c, "text", sw)
        if tflt is not None:
            lex = list({u: s for u, s in [*self._lex(scope, query, tflt, main, c // 2, "text", sw), *lex]}.items())
        # context windows (turns): a window's score goes to every turn in it
        ctx_hits = self._lex(scope, query, flt, _TURN, c, "context", sw) if with_ctx else []
        le = self._lex(scope, query, flt, _EPISODE, k_ep, "text", sw) if with_eps else []

        comp: dict[str, dict[str, float]] = defaultdict(dict)
        raw: dict[str, dict[str, float]] = defaultdict(dict)
        # main level: dense + lexical, plus the same inside the asked time window
        dense = self._dense(scope, qv, flt, main, c, sw)
        if tflt is not None:
            dense = list({u: s for u, s in [*self._dense(scope, qv, tflt, main, c // 2, sw), *dense]}.items())
        dmax = max((s for _, s in dense), default=0.0)
        for u, s in dense:
            raw[u]["dense"] = s
        for u, v in _norm_dense(dense, cfg.dense_floor).items():
            comp[u]["dense"] = cfg.dense_weight * v
        for u, s in lex:
            raw[u]["lexical"] = s
        for u, v in _norm_lexical(lex).items():
            comp[u]["lexical"] = cfg.lexical_weight * v
        ids = set(comp)

        ctx_norm = _norm_lexical(ctx_hits)

        # episodes: their score goes to their member turns
        ep_norm: dict[str, float] = {}
        nd: dict[str, float] = {}
        nl: dict[str, float] = {}
        if with_eps:
            de = self._dense(scope, qv, flt, _EPISODE, k_ep, sw)
            nd, nl = _norm_dense(de, cfg.dense_floor), _norm_lexical(le)
            ep_norm = {e: nd.get(e, 0.0) + nl.get(e, 0.0) for e in set(nd) | set(nl)}

        # positions: of the context windows now (to lend their score), of the scored pool below
        with sw("sql"):
            pos: dict[str, tuple[int, str | None, str | None]] = {}
            if ctx_norm:
                pos, before = self.sql.preceding(scope, sorted(ctx_norm), _CONTEXT_TURNS)
                self._lend_context(ctx_norm, pos, before, comp)
            members = self.sql.sources(sorted(ep_norm)) if ep_norm else {}
        episode_of: dict[str, str] = {}
        for e in sorted(ep_norm, key=lambda e: (-ep_norm[e], e)):
            for m in members.get(e, []):
                episode_of.setdefault(m, e)
        if ep_norm:
            for m, e in episode_of.items():
                comp[m]["episode"] = cfg.episode_weight * ep_norm[e]
        ids = set(comp)
        with sw("fetch"):
            self._fill_dense(scope, qv, ids, raw, comp, dmax)

        # Reading rows is the slow part at scale, so it narrows in two steps: the best ``2 keep + 100``
        # candidates by the parts known so far (dense, lexical, context, episode) get the columns the
        # remaining parts need (time, speaker, validity); the ``keep`` best of those are read whole.
        pool = ids
        if keep is not None and len(ids) > 2 * keep + 100:
            pool = set(sorted(ids, key=lambda u: (-sum(comp[u].values()), u))[: 2 * keep + 100])
        with sw("sql"):
            heads = self.sql.unit_heads(scope, sorted(pool), with_meta=bool(tc.spans))
        rows = {u: r for u, r in heads.items() if r.level == main and r.status not in ("superseded", "deleted")}
        for extra in levels:
            if extra in (main, _EPISODE):
                continue
            # summaries / semantic memories asked for explicitly compete as hits of their own
            dx = self._dense(scope, qv, flt, extra, max(10, c // 4), sw)
            lx = self._lex(scope, query, flt, extra, max(10, c // 4), "text", sw)
            ndx, nlx = _norm_dense(dx, cfg.dense_floor), _norm_lexical(lx)
            more = {u: r for u, r in self.sql.unit_heads(scope, sorted(set(ndx) | set(nlx)), bool(tc.spans)).items()
                    if r.level == extra and r.status not in ("superseded", "deleted")}
            for u in more:
                comp[u]["dense"] = cfg.dense_weight * ndx.get(u, 0.0)
                comp[u]["lexical"] = cfg.lexical_weight * nlx.get(u, 0.0)
            rows.update(more)
        if ep_norm:
            # video scenes have no turn units to lend their score to: they compete as hits themselves
            scenes = {u: r for u, r in self.sql.unit_heads(scope, sorted(ep_norm), bool(tc.spans)).items()
                      if r.stream_id is not None and r.status not in ("superseded", "deleted")}
            for u in scenes:
                comp[u]["dense"] = cfg.dense_weight * nd.get(u, 0.0)
                comp[u]["lexical"] = cfg.lexical_weight * nl.get(u, 0.0)
            rows.update(scenes)
        if not rows:
            return Ranking([], tc, timings_ms=sw.result())
        for u, r in rows.items():  # units that are events carry their position (one query, above)
            if r.seq is not None and u not in pos:
                pos[u] = (r.seq, r.session_id, r.stream_id)
        with sw("fetch"):
            self._fill_dense(scope, qv, [u for u in rows if u not in ids], raw, comp, dmax)  # summaries, scenes
        self._speaker(query, rows, pos, comp)
        self._role(scope, query, rows, comp)
        video = self._video_target(scope, tc, flt)
        for uid, r in rows.items():
            cu = comp[uid]
            if tc.spans:
                cu["temporal"] = cfg.temporal_weight * temporal_score(tc, _times(r))
            if video is not None and (r.stream_id or "") in video:
                cu["video"] = cfg.temporal_weight * _video_score(video[r.stream_id or ""], (r.start_ts, r.end_ts))
        now = datetime.now(UTC)
        for uid, r in rows.items():
            if r.valid_to is not None and r.valid_to <= now:  # a newer fact replaced it: rank it below
                cu = comp[uid]
                cu["validity"] = -(1.0 - cfg.superseded_weight) * sum(cu.values())
        rec_w = cfg.recency_weight if (tc.recency or cfg.recency_always) else 0.0
        if rec_w > 0:
            ts = {u: r.end_ts.timestamp() for u, r in rows.items()}
            lo_t, hi_t = min(ts.values()), max(ts.values())
            for u in rows:
                comp[u]["recency"] = rec_w * ((ts[u] - lo_t) / (hi_t - lo_t) if hi_t > lo_t else 1.0)

        # the same order as the final sort of the hits (score as the hit rounds it, then history, then id)
        seq = {u: p[0] for u, p in pos.items()}
        ranked = sorted(rows, key=lambda u: (-round(sum(comp[u].values()), 6), seq.get(u, 1 << 62), u))
        kept = ranked[:keep] if keep is not None else ranked
        with sw("hydrate"):
            full = self.sql.unit_views(scope, kept)
            missing_ep = [u for u in kept if u not in episode_of]
            if missing_ep and main == _TURN and _EPISODE in levels:
                episode_of.update(self.sql.episodes_of(scope, missing_ep))
            eps = sorted({episode_of[u] for u in kept if u in episode_of})
            ep_rows = self.sql.unit_views(scope, eps) if eps else {}
            srcs = self.sql.sources(sorted(full) + sorted(ep_rows))
            firsts = {e: srcs[e][0] for e in ep_rows if srcs.get(e)}
            need = [f for f in firsts.values() if f not in pos]
            if need:
                pos.update(self.sql.positions(scope, need))
                seq = {u: p[0] for u, p in pos.items()}
        hits = [self._hit(full[u], srcs.get(u, []), comp[u], raw.get(u, {}), seq.get(u)) for u in kept if u in full]
        # ties: earlier in the user's history first (ids are random, positions are not), then id
        hits.sort(key=lambda h: (-h.score, h.seq if h.seq is not None else 1 << 62, h.id))
        if cfg.contiguity > 0 and main == _TURN:
            with sw("contiguity"):
                hits = self._contiguity(scope, hits, pos)
        episodes = {e: self._hit(r, srcs.get(e, []), {}, {}, seq.get(firsts.get(e, ""))) for e, r in ep_rows.items()}
        timings = sw.result()
        timings["total"] = round((time.perf_counter() - t_start) * 1000.0, 3)
        timings["rank"] = round(timings["total"] - sum(v for k, v in timings.items() if k != "total"), 3)
        return Ranking(hits, tc, episodes, {u: e for u, e in episode_of.items() if u in full and e in episodes},
                       timings)

    def _contiguity(
        self, scope: Scope, hits: list[Hit], pos: dict[str, tuple[int, str | None, str | None]]
    ) -> list[Hit]:
        """EM-LLM's contiguity buffer: each of the ``contiguity_top`` best turn hits brings the
        ``contiguity`` turns on either side of it in its session right behind it in the ranking (the
        packer takes them when the budget allows), scored just below it; a neighbour already ranked
        higher stays where it is."""
        cfg = self.cfg
        top = [h for h in hits if h.level == Level.TURN and h.stream_id is None and h.id in pos][: cfg.contiguity_top]
        if not top:
            return hits
        want = {pos[h.id][0] + d for h in top for d in range(-cfg.contiguity, cfg.contiguity + 1) if d}
        at = self.sql.events_at(scope, sorted(x for x in want if x > 0))
        near: dict[str, list[tuple[str, int]]] = {}
        for h in top:
            s0, session, stream = pos[h.id]
            near[h.id] = [(at[s0 + d][0], d) for d in range(-cfg.contiguity, cfg.contiguity + 1)
                          if d and s0 + d in at and at[s0 + d][1:] == (session, stream)]
        ids = sorted({i for lst in near.values() for i, _ in lst})
        rows = {u: r for u, r in self.sql.unit_views(scope, ids).items()
                if r.level == _TURN and r.status not in ("superseded", "deleted")}
        srcs = self.sql.sources(sorted(rows))
        rank = {h.id: i for i, h in enumerate(hits)}
        by_id = {h.id: h for h in hits}
        extra: dict[str, list[Hit]] = {}
        placed: set[str] = set()
        for h in top:
            for nid, d in near[h.id]:
                if nid not in rows or nid in placed or rank.get(nid, 1 << 30) < rank[h.id]:
                    continue
                placed.add(nid)
                lent = round(h.score * cfg.contiguity_decay ** abs(d), 6)
                moved = by_id.get(nid)  # ranked lower: moves up, keeping its own parts
                if moved is None:
                    moved = self._hit(rows[nid], srcs.get(nid, []), {}, {}, pos[h.id][0] + d)
                moved.components["contiguity"] = lent
                moved.score = max(moved.score, lent)
                extra.setdefault(h.id, []).append(moved)
        out: list[Hit] = []

        def emit(h: Hit) -> None:
            out.append(h)
            for x in sorted(extra.get(h.id, []), key=lambda x: x.seq or 0):
                emit(x)  # a moved top hit brings its own neighbours along

        for h in hits:
            if h.id not in placed:
                emit(h)
        return out

    def _lend_context(
        self, ctx: dict[str, float], pos: dict[str, tuple[int, str | None, str | None]],
        at: dict[int, tuple[str, str | None, str | None]], comp: dict[str, dict[str, float]],
    ) -> None:
        """A context window ends at its turn and holds the ``_CONTEXT_TURNS`` turns before it in the
        session (``at``: the events at those positions): each of them gets the window's score (the best
        window wins)."""
        w = self.cfg.context_weight
        for u, v in ctx.items():
            if u not in pos:
                continue
            seq, session, stream = pos[u]
            comp[u]["context"] = max(comp[u].get("context", 0.0), w * v)
            for d in range(1, _CONTEXT_TURNS + 1):
                hit = at.get(seq - d)
                if hit is None or hit[1:] != (session, stream):
                    continue
                eid = hit[0]
                comp[eid]["context"] = max(comp[eid].get("context", 0.0), w * v)
                pos.setdefault(eid, (seq - d, session, stream))

    def _fill_dense(
        self, scope: Scope, qv: np.ndarray, ids: Iterable[str], raw: dict[str, dict[str, float]],
        comp: dict[str, dict[str, float]], dmax: float,
    ) -> None:
        """Candidates that came from other lists get their exact cosine too (same normalisation),
        computed by the vector store (``VectorStore.score``)."""
        missing = [u for u in ids if "dense" not in raw.get(u, {})]
        if not missing or dmax <= self.cfg.dense_floor:
            return
        # only candidates that can still reach the budget matter: the best by their other parts
        missing = sorted(missing, key=lambda u: (-sum(comp[u].values()), u))[: self.cfg.candidates]
        span = max(dmax - self.cfg.dense_floor, 1e-6)
        for u, cos in self.vectors.score(scope, qv[0], missing).items():
            raw[u]["dense"] = round(cos, 6)
            comp[u]["dense"] = self.cfg.dense_weight * min(1.0, max(0.0, (cos - self.cfg.dense_floor) / span))

    def _speaker(
        self, query: str, rows: Mapping[str, UnitHead], pos: dict[str, tuple[int, str | None, str | None]],
        comp: dict[str, dict[str, float]],
    ) -> None:
        """Boost turns whose speaker the query names (when it names some but not all speakers)."""
        if self.cfg.speaker_weight <= 0:
            return
        who = {u: _speaker_of(r.head) for u, r in rows.items() if r.level == _TURN and r.stream_id is None}
        names = {n for n in who.values() if n}
        if len(names) < 2:
            return
        ql = query.lower()
        named = {n for n in names if re.search(r"\b" + re.escape(n.lower()) + r"\b", ql)}
        if not named or named == names:
            return
        for u, n in who.items():
            if n in named:
                comp[u]["speaker"] = self.cfg.speaker_weight

    def _role(self, scope: Scope, query: str, rows: Mapping[str, UnitHead], comp: dict[str, dict[str, float]]) -> None:
        """Boost the turns of the party the query is about, in a user-assistant memory: a first-person
        question ("where did I ...", "my ...") is about the user, whose own turns state their facts (an
        assistant's long answers share the topic's words but rarely hold them); a question about what the
        assistant said ("you recommended", "our previous conversation") is about the assistant's turns.
        Only when the candidates hold both ``user`` and ``assistant`` turns (chats between named people
        are left alone)."""
        w = self.cfg.role_weight
        if w <= 0:
            return
        who = query_party(query)
        if who is None:
            return
        turns = [u for u, r in rows.items() if r.level == _TURN and r.stream_id is None]
        roles = self.sql.roles(scope, sorted(turns))
        if not {"user", "assistant"} <= set(roles.values()):
            return
        for u, role in roles.items():
            if role == who:
                comp[u]["role"] = w

    def _video_target(self, scope: Scope, tc: TimeConstraint, flt: VectorFilter) -> dict[str, datetime] | None:
        if tc.video_offset is None:
            return None
        starts = self.sql.stream_starts(scope, flt.stream)
        return {s: t + timedelta(seconds=tc.video_offset) for s, t in starts.items()} or None

    def _hit(self, u: UnitView, sources: list[str], comp: dict[str, float], raw: dict[str, float],
             seq: int | None) -> Hit:
        components = {k: round(v, 6) for k, v in sorted(comp.items())}
        for k, v in sorted(raw.items()):
            components[f"{k}_raw"] = round(v, 6)
        meta = dict(u.meta or {})
        compressed = meta.pop(COMPRESSED_TEXT, None)  # not sent twice: it is the text, or not asked for
        text = compressed if self.compressed_text and compressed else u.text
        return Hit(
            id=u.id, text=text, score=round(sum(comp.values()), 6), level=Level(u.level), start_time=u.start_ts,
            end_time=u.end_ts, source_ids=list(sources), user_id=u.user_id, session_id=u.session_id,
            stream_id=u.stream_id, components=components, metadata=meta, seq=seq,
        )


_FIRST_PERSON = re.compile(r"\b(i|me|my|mine|myself)\b", re.IGNORECASE)
_ABOUT_ASSISTANT = re.compile(
    r"\byou\s+(said|told|mentioned|recommended|suggested|gave|provided|listed|shared|wrote|explained|described|"
    r"proposed|came up with|created|made)\b|\byour\s+(answer|advice|suggestions?|recommendations?|list|response|"
    r"explanation)\b|\bremind me\b|\b(our|the|that)\s+(previous|earlier|last|past)\s+(conversation|chat|discussion|"
    r"exchange)\b",
    re.IGNORECASE,
)


def query_party(query: str) -> str | None:
    """Whose turns a question is about: ``"assistant"`` when it asks what the assistant said ("what
    sealant you recommended", "remind me", "our previous conversation"), ``"user"`` when it speaks in
    the first person otherwise ("where did I buy my racket?"), else None."""
    if _ABOUT_ASSISTANT.search(query):
        return "assistant"
    if _FIRST_PERSON.search(query):
        return "user"
    return None


def _speaker_of(text: str) -> str | None:
    """The speaker of a turn unit ("Caroline: ..." -> "Caroline"), as ``pipeline.turn_text`` writes it."""
    head, sep, _ = text.partition(": ")
    return head if sep and 0 < len(head) <= 64 and "\n" not in head else None


def _times(u: UnitHead) -> list[tuple[datetime, datetime]]:
    out = [(u.start_ts, u.end_ts)]
    for d in (u.meta or {}).get("dates", []) or []:
        try:
            out.append((datetime.fromisoformat(d[0]), datetime.fromisoformat(d[1])))
        except (TypeError, ValueError, IndexError):
            continue
    return out


def _video_score(target: datetime, span: tuple[datetime, datetime]) -> float:
    """1 when the unit spans the asked moment of its stream, decaying with a 30 s scale outside."""
    if span[0] <= target <= span[1]:
        return 1.0
    gap = min(abs((span[0] - target).total_seconds()), abs((span[1] - target).total_seconds()))
    return float(np.exp(-gap / 30.0))
