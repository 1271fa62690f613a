"""Public SDK: ``Memory`` (sync) and ``AsyncMemory`` (async), over one ``MemoryService``.

    m = Memory()                              # embedded default under ~/.memsvc
    m = Memory(path="/tmp/mem")               # embedded, elsewhere
    m = Memory(settings=Settings(...))        # any profile
    ids = m.add(messages=[{"role": "user", "content": "hi", "name": "Ann"}], user_id="u1", session_id="s1")
    hits = m.search("greeting", user_id="u1", budget_tokens=500)
    prompt = m.context("greeting", user_id="u1", budget_tokens=500)
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from memsvc.config import Settings
from memsvc.exceptions import InvalidInputError, RecordNotFound
from memsvc.models import ChatEvent, Hit, MemoryRecord, VideoEvent
from memsvc.validation import check_embeddings, check_id, check_text, check_time, messages_to_events

__all__ = ["AsyncMemory", "Memory"]

T = TypeVar("T")


class Memory:
    """Long-term memory for one tenant. Thread-safe; close it (or use ``with``) when done."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        path: str | Path | None = None,
        tenant: str | None = None,
        **components: Any,
    ) -> None:
        if settings is None:
            settings = Settings(data_dir=Path(path)) if path is not None else Settings()
        elif path is not None:
            settings = settings.model_copy(update={"data_dir": Path(path)})
        from memsvc.service import MemoryService

        self.settings = settings
        self._svc = MemoryService(settings, tenant, **components)
        self._scheduler: Any = None
        if settings.consolidation.embedded_schedule:
            from memsvc.consolidation.scheduler import EmbeddedScheduler

            self._scheduler = EmbeddedScheduler(self._svc).start()

    def for_tenant(self, tenant: str) -> Memory:
        """The same store seen as another tenant (shares files, models and connections; closing
        either closes both)."""
        view = object.__new__(Memory)
        view.settings = self.settings
        view._svc = self._svc.with_tenant(tenant)
        view._scheduler = None
        return view

    @property
    def service(self) -> Any:
        """The underlying ``MemoryService`` (for workers and the API)."""
        return self._svc

    # -- writes ------------------------------------------------------------------------------------
    def add(
        self,
        messages: Any,
        user_id: str,
        session_id: str | None = None,
        timestamp: datetime | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[str]:
        """Store chat messages (``[{"role", "content", "name"?, "timestamp"?, "client_id"?}]``).

        Returns the event ids in message order; they are searchable when this returns. A message
        whose ``client_id`` is already stored for this user returns the stored id (idempotent)."""
        events = messages_to_events(messages, user_id, session_id, timestamp, self.settings.limits, metadata)
        return self._svc.add_chat(events)

    def add_events(self, events: Sequence[ChatEvent | VideoEvent]) -> list[str]:
        """Store typed events (chat and/or video), validated like ``add``; ids in input order."""
        if not isinstance(events, Sequence) or isinstance(events, str):
            raise InvalidInputError("events must be a list of ChatEvent/VideoEvent")
        chats: list[tuple[int, ChatEvent]] = []
        videos: list[tuple[int, VideoEvent]] = []
        for i, e in enumerate(events):
            if isinstance(e, ChatEvent):
                msg = {"role": e.role, "content": e.text, "name": e.name, "client_id": e.client_id,
                       "timestamp": e.timestamp, "metadata": e.metadata}
                ev = messages_to_events([msg], e.user_id, e.session_id, None, self.settings.limits)[0]
                chats.append((i, ev))
            elif isinstance(e, VideoEvent):
                videos.append((i, e))
            else:
                raise InvalidInputError(f"events[{i}] is a {type(e).__name__}, not a ChatEvent/VideoEvent")
        out = [""] * len(events)
        for (i, _), eid in zip(chats, self._svc.add_chat([e for _, e in chats]), strict=True):
            out[i] = eid
        groups: dict[tuple[str, str], list[tuple[int, VideoEvent]]] = {}
        for i, v in videos:
            groups.setdefault((v.user_id, v.stream_id), []).append((i, v))
        for (uid, sid), items in groups.items():
            ids = self.add_frames(
                stream_id=sid, user_id=uid, timestamps=[v.timestamp for _, v in items],
                embeddings=None if any(v.embedding is None for _, v in items) else [v.embedding for _, v in items],
                captions=[v.caption for _, v in items], images=[v.image_ref for _, v in items],
                client_ids=[v.client_id for _, v in items],
            )
            for (i, _), eid in zip(items, ids, strict=True):
                out[i] = eid
        return out

    def add_frames(
        self,
        stream_id: str,
        user_id: str,
        timestamps: Sequence[Any],
        embeddings: Any = None,
        captions: Sequence[str | None] | None = None,
        images: Sequence[str | None] | None = None,
        client_ids: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Store video frames: per frame an embedding (your vision encoder's) and/or a caption."""
        uid = check_id(user_id, "user_id")
        sid = check_id(stream_id, "stream_id")
        if not isinstance(timestamps, Sequence) or isinstance(timestamps, str) or not timestamps:
            raise InvalidInputError("timestamps must be a non-empty list")
        n = len(timestamps)
        if n > self.settings.limits.max_batch:
            raise InvalidInputError(f"{n} frames in one call; the limit is {self.settings.limits.max_batch}")
        ts = [check_time(t, f"timestamps[{i}]") for i, t in enumerate(timestamps)]
        emb = None if embeddings is None else check_embeddings(embeddings, n, None)
        for name, seq in (("captions", captions), ("images", images), ("client_ids", client_ids)):
            if seq is not None and (not isinstance(seq, Sequence) or isinstance(seq, str) or len(seq) != n):
                raise InvalidInputError(f"{name} must be a list of {n} items")
        caps = [None if c is None else check_text(c, f"captions[{i}]", self.settings.limits)
                for i, c in enumerate(captions or [None] * n)]
        imgs = [check_id(x, f"images[{i}]", optional=True) if x is None or len(str(x)) <= 256 else str(x)[:1024]
                for i, x in enumerate(images or [None] * n)]
        cids = [check_id(c, f"client_ids[{i}]", optional=True) for i, c in enumerate(client_ids or [None] * n)]
        for i in range(n):
            if caps[i] is None and emb is None:
                raise InvalidInputError(f"frame {i} has neither an embedding nor a caption")
        events = [
            VideoEvent(user_id=uid, stream_id=sid, timestamp=ts[i],  # type: ignore[arg-type]
                       embedding=None if emb is None else emb[i], caption=caps[i], image_ref=imgs[i],
                       client_id=cids[i])
            for i in range(n)
        ]
        return self._svc.add_video(events)

    # -- reads -------------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        user_id: str,
        limit: int | None = None,
        budget_tokens: int | None = None,
        time_range: tuple[datetime | None, datetime | None] | None = None,
        *,
        levels: Sequence[str] | None = None,
        session_id: str | None = None,
        stream_id: str | None = None,
        query_time: datetime | None = None,
    ) -> list[Hit]:
        """Ranked hits. Without ``budget_tokens``: the best ``limit`` (default 10). With it: the hits
        that fit the budget, exactly those ``context`` packs, in that order."""
        return self._svc.search(query, user_id, limit, budget_tokens, time_range, levels, session_id,
                                stream_id, query_time)

    def context(self, query: str, user_id: str, budget_tokens: int = 1000, **kwargs: Any) -> str:
        """Prompt text (``[time] speaker: text`` per unit) never over ``budget_tokens`` cl100k tokens."""
        return self._svc.context(query, user_id, budget_tokens, **kwargs)

    def get(self, memory_id: str, user_id: str | None = None) -> MemoryRecord:
        """One memory (unit or event) by id; ``RecordNotFound`` when unknown in this tenant."""
        return self._svc.get(memory_id, self._owner(memory_id, user_id))

    def history(
        self, user_id: str, session_id: str | None = None, stream_id: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[MemoryRecord]:
        """A user's events in arrival order, paginated."""
        return self._svc.history(user_id, session_id, stream_id, limit, offset)

    def delete(self, memory_id: str, user_id: str | None = None) -> int:
        """Delete a memory and everything derived from it; returns units removed."""
        return self._svc.delete(memory_id, self._owner(memory_id, user_id))

    def delete_user(self, user_id: str) -> int:
        """Delete every event, unit and vector of a user; returns units removed."""
        return self._svc.delete_user(user_id)

    def consolidate(self, user_id: str | None = None, jobs: Sequence[str] | None = None) -> dict[str, Any]:
        """Run the consolidation jobs now (every user of the tenant, or one); returns what each did."""
        from memsvc.consolidation import consolidate

        return consolidate(self._svc, jobs=jobs, users=None if user_id is None else [str(check_id(user_id, "user_id"))])

    def stats(self, user_id: str | None = None) -> dict[str, int]:
        """Counts of events, units per level and vectors."""
        return self._svc.stats(user_id)

    def close(self) -> None:
        """Stop the embedded scheduler, flush and release the stores (idempotent)."""
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        self._svc.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _owner(self, memory_id: Any, user_id: str | None) -> str:
        mid = check_id(memory_id, "memory_id")
        if user_id is not None:
            return user_id
        owner = self._svc.sql.owner(self._svc.tenant, mid)
        if owner is None:
            raise RecordNotFound(f"no memory {mid!r}")
        return owner


def _to_thread(fn: Callable[..., T]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(self: AsyncMemory, *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(getattr(self._sync, fn.__name__), *args, **kwargs)

    return wrapper


class AsyncMemory:
    """``Memory`` with ``async`` methods; blocking store and model work runs in worker threads."""

    def __init__(self, settings: Settings | None = None, **kwargs: Any) -> None:
        self._sync = Memory(settings, **kwargs)
        self.settings = self._sync.settings

    add = _to_thread(Memory.add)
    add_events = _to_thread(Memory.add_events)
    add_frames = _to_thread(Memory.add_frames)
    search = _to_thread(Memory.search)
    context = _to_thread(Memory.context)
    get = _to_thread(Memory.get)
    history = _to_thread(Memory.history)
    delete = _to_thread(Memory.delete)
    delete_user = _to_thread(Memory.delete_user)
    consolidate = _to_thread(Memory.consolidate)
    stats = _to_thread(Memory.stats)
    close = _to_thread(Memory.close)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
