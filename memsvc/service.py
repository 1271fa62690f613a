"""MemoryService: the synchronous core behind ``Memory``, ``AsyncMemory``, the CLI and workers.

It owns the components built from ``Settings`` (SQL store, vector store, embedder, segmenter) and
implements ingest, search/context, get/history and cascading deletes for one tenant.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memsvc._types import Level
from memsvc.compressors.denoise import Denoiser
from memsvc.config import Settings
from memsvc.embedders import EMBEDDERS, IMAGE_EMBEDDERS, Embedder, ImageEmbedder
from memsvc.exceptions import ConfigError, IndexMismatchError, InvalidInputError, RecordNotFound
from memsvc.listeners import ChangeKind, UnitListener, notify
from memsvc.models import ChatEvent, Hit, MemoryRecord, VideoEvent
from memsvc.pipeline import Ingestor, unit_text
from memsvc.retrieval.hybrid import HybridRetriever
from memsvc.retrieval.packing import format_context, pack
from memsvc.retrieval.rerank import RERANKERS, RerankContext, rerank_top
from memsvc.segmenters import SEGMENTERS, Segmenter
from memsvc.stores import LEXICAL_INDEXES, VECTOR_STORES, LexicalIndex, Scope, VectorFilter, VectorStore
from memsvc.stores.sql import SQLRecordStore
from memsvc.stores.sql_schema import EventRow, UnitRow
from memsvc.validation import check_id, check_text, check_time_range
from memsvc.video.query import video_candidates

__all__ = ["MemoryService"]


def _vector_options(settings: Settings, dim: int) -> dict[str, Any]:
    v = settings.vector
    opts: dict[str, Any] = {"dim": dim}
    if v.backend == "qdrant-edge":
        opts.update(path=str(settings.vector_path), quantization=v.quantization, hnsw_threshold=v.hnsw_threshold)
    elif v.backend == "qdrant":
        opts.update(collection=v.collection, quantization=v.quantization)
        opts.update({"url": v.url} if v.url else {"path": str(settings.data_dir / "qdrant-local")})
    if v.quantization == "binary":
        opts["oversampling"] = 4.0  # measured: recall@10 0.84 at 2x, 0.96 at 4x on MiniLM vectors
    opts.update(v.options)
    return opts


def _lexical(settings: Settings) -> LexicalIndex | None:
    cfg = settings.lexical
    if cfg.backend == "none":
        return None
    opts: dict[str, Any] = {"path": str(settings.lexical_path)} if cfg.backend == "qdrant-edge" else {}
    opts.update(cfg.options)
    return LEXICAL_INDEXES.create(cfg.backend, **opts)


def _denoiser(settings: Settings) -> Denoiser | None:
    cfg = settings.compressor
    if not cfg.active:
        return None
    from memsvc.compressors import PROMPT_COMPRESSORS

    return Denoiser(PROMPT_COMPRESSORS.create(cfg.backend, **cfg.options), rate=cfg.rate, embed=cfg.denoise,
                    mix=cfg.denoise_mix, lexical=cfg.lexical == "compressed", returns_compressed=cfg.returns == "compressed")


class MemoryService:
    """All memory operations for one tenant; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        tenant: str | None = None,
        *,
        embedder: Embedder | None = None,
        vectors: VectorStore | None = None,
        segmenter: Segmenter | None = None,
        reindex: bool = False,
        lexical: LexicalIndex | None = None,
    ) -> None:
        self.settings = settings
        self.tenant = check_id(tenant or settings.tenant, "tenant")  # type: ignore[assignment]
        if settings.profile == "embedded":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.embedder = embedder or EMBEDDERS.create(settings.embedder.backend, **settings.embedder.options)
        rr = settings.retrieval.reranker
        self.reranker = RERANKERS.create(rr.backend, **rr.options)  # models inside load on first use
        self.sql = SQLRecordStore(settings.sql_url, auto_migrate=settings.auto_migrate)
        try:
            if reindex:
                # pending first: a crash anywhere after this leaves units that the next open indexes
                # (with whichever embedder the SQL metadata then names), never "indexed" units without vectors
                self.sql.set_index_state(sorted(self.sql.live_unit_ids()), "pending")
                self._drop_index(vectors)
            else:
                self._check_meta()
            self.vectors = vectors or VECTOR_STORES.create(
                settings.vector.backend, **_vector_options(settings, self.embedder.dim)
            )
        except BaseException:
            self.sql.close()
            raise
        try:
            self.lexical = lexical if lexical is not None else _lexical(settings)
        except BaseException:
            self.vectors.close()
            self.sql.close()
            raise
        self.segmenter = segmenter or SEGMENTERS.create(settings.segmenter.backend, **settings.segmenter.options)
        denoiser = _denoiser(settings)
        self.ingestor = Ingestor(self.sql, self.vectors, self.embedder, self.segmenter, self.lexical,
                                 resolve_dates=settings.retrieval.annotate_dates, denoiser=denoiser)
        self.retriever = HybridRetriever(self.sql, self.vectors, self.embedder, self.lexical, settings.retrieval,
                                         compressed_text=denoiser is not None and denoiser.returns_compressed)
        from memsvc.video import VideoIngestor

        self._image_embedder: list[ImageEmbedder | None] = []  # built on first use (CLIP loads a model)
        self.video = VideoIngestor(self)
        from memsvc.consolidation.decay import AccessLog

        self.access = AccessLog()
        self._timings = threading.local()
        """Retrievals counted for decay (strength grows with use); flushed by consolidation."""
        self.listeners: list[UnitListener] = []
        """Told about changed and deleted units (shared with tenant views); see ``memsvc.listeners``."""
        if settings.gpu.episode_kv_dir is not None:
            from memsvc.gpu.kv_files import EpisodeKVInvalidator  # torch-free

            self.listeners.append(EpisodeKVInvalidator(settings.gpu.episode_kv_dir))
        self._life = {"closed": False}  # shared with tenant views
        self._close_lock = threading.Lock()
        self.repair()

    # -- lifecycle ---------------------------------------------------------------------------------
    def _check_meta(self) -> None:
        want = {"embedder": self.embedder.name, "embedder_version": self.embedder.version,
                "dim": str(self.embedder.dim)}
        have = self.sql.meta()
        clash = {k: (have[k], v) for k, v in want.items() if k in have and have[k] != v}
        if clash:
            raise IndexMismatchError(
                f"this store was indexed with {have.get('embedder')} (dim {have.get('dim')}); the configured "
                f"embedder is {self.embedder.name} (dim {self.embedder.dim}). Re-index it with "
                "`memsvc doctor --reindex` or configure the original embedder."
            )
        if not have:
            self.sql.set_meta(want)

    def _drop_index(self, given: VectorStore | None) -> None:
        """Forget the vector index so it is rebuilt from SQL with the configured embedder."""
        if given is None and self.settings.vector.backend == "qdrant-edge":
            shutil.rmtree(self.settings.vector_path, ignore_errors=True)
        elif given is None:
            raise ConfigError(
                f"re-indexing a {self.settings.vector.backend!r} index: drop its collection first, then reopen"
            )
        self.sql.set_meta({"embedder": self.embedder.name, "embedder_version": self.embedder.version,
                           "dim": str(self.embedder.dim)})

    def repair(self) -> int:
        """Index units left ``pending``/``stale`` (a crash between the SQL and index writes); a
        lexical index that is empty while SQL holds units (new or lost) is rebuilt from SQL."""
        total = 0
        if self.lexical is not None and self.lexical.count() == 0:
            self.rebuild_lexical()
        while True:
            rows = self.sql.unit_ids_by_state(["pending", "stale"], limit=2_000)
            if not rows:
                return total
            total += self.ingestor.reindex(rows)

    def rebuild_lexical(self) -> int:
        """Write every live unit's text to the lexical index again (SQL is the truth)."""
        if self.lexical is None:
            return 0
        n, after = 0, ""
        while True:
            rows = self.sql.units_page(after, 2_000)
            if not rows:
                return n
            ctx = self.ingestor.contexts(rows)
            self.lexical.upsert([self.ingestor.lexical_doc(u, ctx.get(u.id)) for u in rows])
            n += len(rows)
            after = rows[-1].id

    def close(self) -> None:
        """Flush and release files and connections (idempotent)."""
        with self._close_lock:
            if self._life["closed"]:
                return
            self._life["closed"] = True
            with contextlib.suppress(Exception):  # access counts are best effort; closing must go on
                self.access.flush(self)
            try:
                self.video.frames.close()
                self.vectors.flush()
                self.vectors.close()
                if self.lexical is not None:
                    self.lexical.flush()
                    self.lexical.close()
            finally:
                self.sql.close()

    def with_tenant(self, tenant: str) -> MemoryService:
        """A view of this service for another tenant, sharing stores, models and locks."""
        view = copy.copy(self)
        view.tenant = check_id(tenant, "tenant")  # type: ignore[assignment]
        return view

    def scope(self, user_id: Any) -> Scope:
        return Scope(self.tenant, check_id(user_id, "user_id"))  # type: ignore[arg-type]

    def add_listener(self, listener: UnitListener) -> None:
        """Tell ``listener`` about every later unit change or delete (all tenant views share it)."""
        self.listeners.append(listener)

    def notify(self, kind: ChangeKind, scope: Scope, unit_ids: Sequence[str] | set[str], cause: str) -> None:
        """Tell the listeners that these units changed or went away (call after the SQL write)."""
        if self.listeners:
            notify(self.listeners, kind, scope, unit_ids, cause)

    # -- writes ------------------------------------------------------------------------------------
    def add_chat(self, events: Sequence[ChatEvent]) -> list[str]:
        """Store chat events (any users, order kept); returns their ids in input order."""
        by_user: dict[str, list[int]] = {}
        for i, e in enumerate(events):
            by_user.setdefault(e.user_id, []).append(i)
        out: list[str] = [""] * len(events)
        for idxs in by_user.values():
            ids = self.ingestor.add_chat(self.tenant, [events[i] for i in idxs])
            for i, eid in zip(idxs, ids, strict=True):
                out[i] = eid
        return out

    @property
    def image_embedder(self) -> ImageEmbedder | None:
        """The configured image embedder (``settings.video.image_embedder``), or None."""
        if not self._image_embedder:
            cfg = self.settings.video.image_embedder
            self._image_embedder.append(IMAGE_EMBEDDERS.create(cfg.backend, **cfg.options))
        return self._image_embedder[0]

    def add_video(self, events: Sequence[VideoEvent], final: bool = False) -> list[str]:
        """Store frames of one user and stream (see ``memsvc.video.ingest``); ids in input order."""
        return self.video.add(self.tenant, events, final=final)  # type: ignore[arg-type]

    def end_stream(self, stream_id: Any, user_id: Any) -> int:
        """Close a stream's open scene now. Returns scenes closed."""
        scope = self.scope(user_id)
        return self.video.end_stream(scope.tenant, scope.user, check_id(stream_id, "stream_id"))  # type: ignore[arg-type]

    def delete_stream(self, stream_id: Any, user_id: Any) -> int:
        """Remove a stream's frames, scenes, derived units and vectors (both indexes). Returns units removed."""
        return self.video.delete_stream(self.scope(user_id), check_id(stream_id, "stream_id"))  # type: ignore[arg-type]

    # -- reads -------------------------------------------------------------------------------------
    def search(
        self,
        query: Any,
        user_id: Any,
        limit: int | None = None,
        budget_tokens: int | None = None,
        time_range: Any = None,
        levels: Sequence[str] | None = None,
        session_id: str | None = None,
        stream_id: str | None = None,
        query_time: datetime | None = None,
    ) -> list[Hit]:
        """Ranked hits (best first); with ``budget_tokens`` exactly the hits ``context`` packs, in its
        (chronological) order. ``query_time`` (default now) anchors time expressions in the query."""
        scope = self.scope(user_id)
        if query_time is not None:
            from memsvc.validation import check_time

            query_time = check_time(query_time, "query_time")
        q = check_text(query, "query", self.settings.limits, self.settings.limits.max_query_chars)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidInputError("limit must be a positive integer")
        if budget_tokens is not None and (
            isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 1
        ):
            raise InvalidInputError("budget_tokens must be a positive integer")
        tr = check_time_range(time_range)
        if levels is not None:
            bad = set(levels) - {lv.value for lv in Level}
            if bad:
                raise InvalidInputError(f"unknown levels {sorted(bad)}")
        flt = VectorFilter(
            levels=tuple(levels) if levels else None,
            session=check_id(session_id, "session_id", optional=True),
            stream=check_id(stream_id, "stream_id", optional=True),
            time_from=tr[0].timestamp() if tr and tr[0] else None,
            time_to=tr[1].timestamp() if tr and tr[1] else None,
        )
        cfg = self.settings.retrieval
        if budget_tokens is None:
            keep = max(cfg.hydrate_min, 4 * (limit or cfg.default_limit))
        else:
            keep = max(cfg.hydrate_min, budget_tokens * cfg.hydrate_per_1k_tokens // 1000)
        t0 = time.perf_counter()
        ranking = self.retriever.retrieve(scope, q, flt, query_time, keep=keep)
        timings = dict(ranking.timings_ms)
        t1 = time.perf_counter()
        ranking.hits = video_candidates(self, scope, q, flt, ranking.hits)
        ranking.hits = rerank_top(self.reranker, q, ranking.hits, cfg.rerank_top,
                                  RerankContext(vectors=self.vectors.fetch, embed=self.embedder.embed))
        from memsvc.consolidation.extracts import apply_extracts

        ccfg = self.settings.consolidation.for_tenant(str(scope.tenant))
        use = budget_tokens is not None and ccfg.turn_extracts
        ranking.hits = apply_extracts(ranking.hits, use)
        apply_extracts(list(ranking.episodes.values()), use and ccfg.episode_extracts)
        if budget_tokens is None:
            out = _dedup(ranking.hits, limit or cfg.default_limit)
        else:
            out = pack(ranking.hits, budget_tokens, cfg.separator, limit, ranking.episodes, ranking.episode_of,
                       cfg.episode_fill, cfg.cost_exponent, cfg.cost_floor_tokens)
        t2 = time.perf_counter()
        if self.access.record([h.id for h in out]):
            self.access.flush(self)
        t3 = time.perf_counter()
        timings.update(retrieve=round((t1 - t0) * 1000, 3), pack=round((t2 - t1) * 1000, 3),
                       access=round((t3 - t2) * 1000, 3))
        self._timings.last = timings
        return out

    def last_search_timings(self) -> dict[str, float]:
        """Stage timings (ms) of this thread's last ``search``: the retriever's stages (``embed``,
        ``dense``, ``lexical``, ``sql``, ``fetch``, ``hydrate``, ``rank``, ``total``), then ``pack`` (video,
        rerank, extracts, packing) and ``access`` (access-count bookkeeping)."""
        return dict(getattr(self._timings, "last", {}))

    def context(self, query: Any, user_id: Any, budget_tokens: int = 1000, **kwargs: Any) -> str:
        """Prompt text built from exactly ``search(query, budget_tokens=...)``'s hits, in order."""
        hits = self.search(query, user_id, budget_tokens=budget_tokens, **kwargs)
        return format_context(hits, self.settings.retrieval.separator)

    def get(self, memory_id: Any, user_id: Any) -> MemoryRecord:
        """A unit (turn, episode, ...) or event by id, within the user's scope."""
        scope = self.scope(user_id)
        mid = check_id(memory_id, "memory_id")
        units = self.sql.units(scope, [mid])  # type: ignore[list-item]
        if mid in units:
            u = units[mid]
            return _unit_record(u, self.sql.sources([u.id], scope).get(u.id, []))
        evs = self.sql.events(scope, [mid])  # type: ignore[list-item]
        if mid in evs:
            return _event_record(evs[mid])
        raise RecordNotFound(f"no memory {mid!r} for user {scope.user!r}")

    def history(
        self, user_id: Any, session_id: str | None = None, stream_id: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[MemoryRecord]:
        """Events in arrival order (paginated)."""
        scope = self.scope(user_id)
        if not isinstance(limit, int) or not isinstance(offset, int) or limit < 1 or offset < 0:
            raise InvalidInputError("limit must be >= 1 and offset >= 0")
        sid, stid = check_id(session_id, "session_id", optional=True), check_id(stream_id, "stream_id", optional=True)
        if offset >= 2**63 - 1:  # past any SQL integer: past the end
            return []
        rows = self.sql.history(scope, sid, stid, min(limit, 10_000), offset)
        return [_event_record(e) for e in rows]

    # -- deletes -----------------------------------------------------------------------------------
    def delete(self, memory_id: Any, user_id: Any) -> int:
        """Delete an event or a unit and everything derived from it. Episodes that contained a
        deleted event are rebuilt from their remaining events. Returns units removed."""
        scope = self.scope(user_id)
        mid = check_id(memory_id, "memory_id")
        units = self.sql.units(scope, [mid], live_only=False)  # type: ignore[list-item]
        events = self.sql.events(scope, [mid])  # type: ignore[list-item]
        if not units and not events:
            raise RecordNotFound(f"no memory {mid!r} for user {scope.user!r}")
        with self.ingestor._lock(scope):
            doomed_events: list[str] = []
            if mid in events:
                doomed_events.append(mid)  # type: ignore[arg-type]
            if mid in units and units[mid].level == Level.TURN.value:
                doomed_events += [e for e in self.sql.sources([mid], scope).get(mid, []) if e not in doomed_events]
            affected = self.sql.units_of_events(doomed_events, scope) if doomed_events else set()
            direct = {mid} if mid in units else set()
            # turn units die with their event; containers (episodes) are rebuilt; derived units die.
            affected_rows = self.sql.units(scope, sorted(affected), live_only=False)
            rebuild = {u for u, r in affected_rows.items() if r.level == Level.EPISODE.value and u not in direct}
            dead = self.sql.descendants((affected - rebuild) | direct, scope)
            dead |= self.sql.descendants(rebuild, scope) - rebuild
            # SQL first: once the truth is gone a crash can only leave orphan vectors, which search
            # ignores (hydration drops ids SQL does not know) and reconcile removes.
            self.sql.delete_units(sorted(dead), scope)
            self.sql.delete_events(scope, doomed_events)
            self.vectors.delete(sorted(dead))
            self.video.units_deleted(scope, sorted(dead))
            if self.lexical is not None:
                self.lexical.delete(sorted(dead))
            self.notify("deleted", scope, dead, "delete")
            self._rebuild_episodes(scope, sorted(rebuild))
            self.ingestor.forget_cache(scope)
        return len(dead)

    def _rebuild_episodes(self, scope: Scope, ids: Sequence[str]) -> None:
        rows = self.sql.units(scope, ids)
        scenes = [u for u, r in rows.items() if (r.meta or {}).get("scene")]
        if scenes:
            self.video.rebuild_scenes(scope, scenes)
            self.notify("changed", scope, scenes, "rebuild")
            rows = {u: r for u, r in rows.items() if u not in scenes}
        srcs = self.sql.sources(ids, scope)
        empty, changed = [], []
        for uid, u in rows.items():
            eids = srcs.get(uid, [])
            evs = self.sql.events(scope, eids)
            if not evs:
                empty.append(uid)
                continue
            ordered = sorted(evs.values(), key=lambda e: e.seq)
            u.text = "\n".join(unit_text(e.role, e.name, e.text or "", e.ts, self.ingestor.resolve_dates)[0]
                                for e in ordered)
            u.start_ts, u.end_ts = ordered[0].ts, ordered[-1].ts
            u.index_state = "stale"
            changed.append(u)
        self.sql.delete_units(empty, scope)
        self.vectors.delete(empty)
        if self.lexical is not None:
            self.lexical.delete(empty)
        if changed:
            self.sql.write(units=changed)
            self.ingestor.reindex(changed)
        self.notify("deleted", scope, empty, "rebuild")
        self.notify("changed", scope, [u.id for u in changed], "rebuild")

    def delete_user(self, user_id: Any) -> int:
        """Remove every event, unit and vector of a user. Returns units removed."""
        scope = self.scope(user_id)
        with self.ingestor._lock(scope):
            ids = self.sql.unit_ids(scope) if self.listeners else set()
            n = self.sql.delete_scope(scope)
            from memsvc.stores.sql_consolidation import ConsolidationStore

            ConsolidationStore(self.sql).clear_state(scope)  # consolidation progress marks of the user
            self.vectors.delete_scope(scope)
            self.video.delete_scope(scope)
            if self.lexical is not None:
                self.lexical.delete_scope(scope)
            self.ingestor.forget_cache(scope)
            self.notify("user_deleted", scope, ids, "delete_user")
        return n

    def stats(self, user_id: Any | None = None) -> dict[str, int]:
        """Counts of events, units per level and vectors (of one user, or of every user of this tenant;
        never another tenant's)."""
        if user_id is not None:
            scope = self.scope(user_id)
            out = self.sql.count(scope)
            out["vectors"] = self.vectors.count(scope)
            out["frame_vectors"] = self.video.frames.count(scope)
            return out
        out = self.sql.count(tenant=self.tenant)
        scopes = [Scope(self.tenant, u) for u in self.sql.tenant_users(self.tenant)]
        out["vectors"] = sum(self.vectors.count(sc) for sc in scopes)
        out["frame_vectors"] = sum(self.video.frames.count(sc) for sc in scopes)
        return out


def _dedup(hits: Sequence[Hit], limit: int) -> list[Hit]:
    """The best ``limit`` hits, skipping one whose sources an earlier hit already covers."""
    out: list[Hit] = []
    covered: set[str] = set()
    for h in hits:
        if len(out) >= limit:
            break
        srcs = set(h.source_ids)
        if srcs and srcs <= covered:
            continue
        covered |= srcs
        out.append(h)
    return out


def _unit_record(u: UnitRow, sources: list[str]) -> MemoryRecord:
    return MemoryRecord(
        id=u.id, kind=u.level, text=u.text, user_id=u.user_id, start_time=u.start_ts, end_time=u.end_ts,
        session_id=u.session_id, stream_id=u.stream_id, source_ids=sources, metadata=dict(u.meta or {}),
        producer={k: v for k, v in (("embedder", u.embedder), ("embedder_version", u.embedder_version),
                                    ("compressor", u.compressor), ("segmenter", u.segmenter)) if v},
    )


def _event_record(e: EventRow) -> MemoryRecord:
    return MemoryRecord(
        id=e.id, kind="event", text=e.text, user_id=e.user_id, start_time=e.ts, end_time=e.ts,
        session_id=e.session_id, stream_id=e.stream_id, role=e.role, name=e.name, source_ids=[e.id],
        metadata=dict(e.meta or {}),
    )
