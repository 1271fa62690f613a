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
import contextvars
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from memsvc.config import Settings
from memsvc.exceptions import InvalidInputError, RecordNotFound, StoreError
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
        groups: dict[tuple[str, str], list[tuple[int, VideoEvent]]] = {}
        for i, v in videos:
            groups.setdefault((v.user_id, v.stream_id), []).append((i, v))
        # validate every batch before storing any: a refused call stores nothing
        prepared = []
        for (uid, sid), items in groups.items():
            frames = self._frame_events(
                stream_id=sid, user_id=uid, timestamps=[v.timestamp for _, v in items],
                embeddings=None if any(v.embedding is None for _, v in items) else [v.embedding for _, v in items],
                captions=[v.caption for _, v in items], image_refs=[v.image_ref for _, v in items],
                client_ids=[v.client_id for _, v in items], images=None,
            )
            self._svc.video.check(self._svc.tenant, frames)
            prepared.append((items, frames))
        out = [""] * len(events)
        for (i, _), eid in zip(chats, self._svc.add_chat([e for _, e in chats]), strict=True):
            out[i] = eid
        for items, frames in prepared:
            for (i, _), eid in zip(items, self._svc.add_video(frames), strict=True):
                out[i] = eid
        return out

    def add_frames(
        self,
        stream_id: str,
        user_id: str,
        timestamps: Sequence[Any],
        embeddings: Any = None,
        captions: Sequence[str | None] | None = None,
        images: Sequence[Any] | None = None,
        client_ids: Sequence[str | None] | None = None,
        *,
        image_refs: Sequence[str | None] | None = None,
        final: bool = False,
    ) -> list[str]:
        """Store video frames of one stream, in chunks as they come; returns event ids in input order.

        Per frame: an embedding from your vision encoder (``embeddings``: (n, dim)), and/or a caption,
        and/or an image (a path, a PIL image or an (H, W, 3) array) that the configured image embedder
        (``settings.video.image_embedder``) turns into the frame's embedding. A string is also kept as the
        frame's image reference (``image_refs`` sets one explicitly); one that is not a local file (a URL)
        is only a reference. Frames are grouped into scenes
        online (``memsvc.video``); ``final=True`` (or ``end_stream``) closes the open scene. A frame with
        none of embedding, caption or embeddable image raises ``InvalidInputError``; nothing is stored."""
        events = self._frame_events(stream_id, user_id, timestamps, embeddings, captions, images, client_ids,
                                    image_refs)
        return self._svc.add_video(events, final=final)

    def _frame_events(
        self, stream_id: str, user_id: str, timestamps: Sequence[Any], embeddings: Any,
        captions: Sequence[str | None] | None, images: Sequence[Any] | None, client_ids: Sequence[str | None] | None,
        image_refs: Sequence[str | None] | None,
    ) -> list[VideoEvent]:
        """``add_frames`` arguments validated into frame events (image embedder run); stores nothing."""
        uid = check_id(user_id, "user_id")
        sid = check_id(stream_id, "stream_id")
        if not isinstance(timestamps, Sequence) or isinstance(timestamps, str) or not timestamps:
            raise InvalidInputError("timestamps must be a non-empty list")
        n = len(timestamps)
        if n > self.settings.limits.max_batch:
            raise InvalidInputError(f"{n} frames in one call; the limit is {self.settings.limits.max_batch}")
        ts = [check_time(t, f"timestamps[{i}]") for i, t in enumerate(timestamps)]
        emb = None if embeddings is None else check_embeddings(embeddings, n, None)
        for name, seq in (("captions", captions), ("images", images), ("client_ids", client_ids),
                          ("image_refs", image_refs)):
            if seq is not None and (not isinstance(seq, Sequence) or isinstance(seq, str) or len(seq) != n):
                raise InvalidInputError(f"{name} must be a list of {n} items")
        caps = [None if c is None else check_text(c, f"captions[{i}]", self.settings.limits)
                for i, c in enumerate(captions or [None] * n)]
        imgs = list(images or [None] * n)
        refs = [check_id(r, f"image_refs[{i}]", optional=True) if r is None or len(str(r)) <= 256 else str(r)[:1024]
                for i, r in enumerate(image_refs or [None] * n)]
        for i, im in enumerate(imgs):
            if refs[i] is None and isinstance(im, str | Path):
                refs[i] = str(im)[:1024]
        cids = [check_id(c, f"client_ids[{i}]", optional=True) for i, c in enumerate(client_ids or [None] * n)]
        vecs: list[Any] = [None if emb is None else emb[i] for i in range(n)]
        # a string that is not a readable local file is only a reference (e.g. an object-store URL)
        todo = [i for i in range(n) if vecs[i] is None and imgs[i] is not None
                and (not isinstance(imgs[i], str | Path) or Path(imgs[i]).is_file())]
        embedder = self._svc.image_embedder if todo else None
        if todo and embedder is not None:
            for i, v in zip(todo, embedder.embed_images([imgs[i] for i in todo]), strict=True):
                vecs[i] = v
        for i in range(n):
            if caps[i] is None and vecs[i] is None:
                hint = "" if imgs[i] is None else " (no image embedder is configured: settings.video.image_embedder)"
                raise InvalidInputError(f"frame {i} has neither an embedding nor a caption{hint}")
        return [
            VideoEvent(user_id=uid, stream_id=sid, timestamp=ts[i],  # type: ignore[arg-type]
                       embedding=vecs[i], caption=caps[i], image_ref=refs[i], client_id=cids[i])
            for i in range(n)
        ]

    def end_stream(self, stream_id: str, user_id: str) -> int:
        """The stream ended (or paused for good): close its open scene now. Returns scenes closed."""
        return self._svc.end_stream(stream_id, user_id)

    def delete_stream(self, stream_id: str, user_id: str) -> int:
        """Delete a video stream: its frames, scenes, their vectors in the text and frame indexes, its
        online state and every memory derived from them. Returns units removed."""
        return self._svc.delete_stream(stream_id, user_id)

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
        from memsvc.consolidation.runner import JOBS

        if jobs is not None:
            if isinstance(jobs, str) or not isinstance(jobs, Sequence) or not all(isinstance(j, str) for j in jobs):
                raise InvalidInputError("jobs must be a list of job names")
            unknown = sorted(set(jobs) - set(JOBS))
            if unknown:
                raise InvalidInputError(f"unknown consolidation jobs {unknown}; known: {', '.join(JOBS)}")
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


def _offload(fn: Callable[..., T]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(self: AsyncMemory, *args: Any, **kwargs: Any) -> T:
        return await self._run(fn.__name__, *args, **kwargs)  # type: ignore[no-any-return]

    return wrapper


class AsyncMemory:
    """``Memory`` with ``async`` methods, safe under concurrent use from one event loop.

    Design: each call runs the matching ``Memory`` method on a bounded thread pool owned by this
    instance (``max_workers``, default 8) and shared with its ``for_tenant`` views. ``MemoryService`` is
    thread-safe (writes to one user serialise on a per-user lock; reads run in parallel), so any number
    of coroutines may call it at once: at most ``max_workers`` run, the rest wait for a thread instead
    of each spawning one or opening another database connection. Context variables travel with each
    call. A cancelled call stops waiting, but its thread finishes the store operation (SQL and the
    vector index stay consistent). ``close()`` refuses new calls, waits for running ones, then closes.

    Why threads and not an async SQLAlchemy engine: the embedded vector index (qdrant-edge) and the
    embedder are synchronous in-process libraries, so every call needs a worker thread anyway; an async
    engine would only remove the hop for the SQL part on the service profile. ``memsvc.client.
    AsyncMemsvcClient`` is the natively async (httpx) way to reach a ``memsvc serve`` process.
    """

    def __init__(self, settings: Settings | None = None, *, max_workers: int = 8, **kwargs: Any) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise InvalidInputError("max_workers must be a positive integer")
        self._sync = Memory(settings, **kwargs)
        self.settings = self._sync.settings
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="memsvc-async")
        self._state = {"closed": False}

    @classmethod
    def from_memory(cls, memory: Memory, *, max_workers: int = 8) -> AsyncMemory:
        """Async access to an existing ``Memory`` (closing either closes the stores)."""
        view = object.__new__(cls)
        view._sync, view.settings = memory, memory.settings
        view._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="memsvc-async")
        view._state = {"closed": False}
        return view

    def for_tenant(self, tenant: str) -> AsyncMemory:
        """The same store seen as another tenant, sharing stores and the thread pool."""
        view = object.__new__(AsyncMemory)
        view._sync, view.settings = self._sync.for_tenant(tenant), self.settings
        view._pool, view._state = self._pool, self._state
        return view

    @property
    def sync(self) -> Memory:
        """The ``Memory`` this wraps (for code that must call it from a thread of its own)."""
        return self._sync

    async def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._state["closed"]:
            raise StoreError("this AsyncMemory is closed")
        call = functools.partial(contextvars.copy_context().run, getattr(self._sync, name), *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    add = _offload(Memory.add)
    add_events = _offload(Memory.add_events)
    add_frames = _offload(Memory.add_frames)
    end_stream = _offload(Memory.end_stream)
    delete_stream = _offload(Memory.delete_stream)
    search = _offload(Memory.search)
    context = _offload(Memory.context)
    get = _offload(Memory.get)
    history = _offload(Memory.history)
    delete = _offload(Memory.delete)
    delete_user = _offload(Memory.delete_user)
    consolidate = _offload(Memory.consolidate)
    stats = _offload(Memory.stats)

    async def close(self) -> None:
        """Refuse new calls, wait for running ones, release the stores (idempotent)."""
        if self._state["closed"]:
            return
        self._state["closed"] = True

        def shutdown() -> None:
            self._pool.shutdown(wait=True)
            self._sync.close()

        await asyncio.to_thread(shutdown)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
