"""Celery tasks: thin wrappers over ``memsvc.consolidation`` (the logic lives and is tested there).

    memsvc.tick(tenant=None, jobs=None, all_users=False)   beat: close idle episodes, fan out per user
    memsvc.consolidate_user(tenant, user, jobs=None)        one user's jobs under the user's lock
    memsvc.reconcile(tenant=None)                           indexing queue: SQL <-> vectors, HNSW build
    memsvc.index_pending()                                  indexing queue: index pending/stale units

A task retries only on errors whose class says ``is_retryable`` (store unavailable, lock busy, GPU
out of memory), with exponential backoff; anything else fails at once.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from celery import shared_task

from memsvc.config import Settings
from memsvc.consolidation import (
    FileLocks,
    RedisLocks,
    UserLocks,
    close_idle_episodes,
    consolidate_user,
    reconcile,
    users_with_work,
)
from memsvc.consolidation._common import store
from memsvc.exceptions import MemsvcError

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["consolidate_user_task", "index_pending", "reconcile_task", "tick", "use_service"]

_guard = threading.Lock()


def use_service(app: Any, svc: MemoryService | None) -> None:
    """Make ``app``'s tasks use ``svc`` (a worker in the same process as the service, e.g. tests)."""
    app.memsvc_service = svc


def _settings(task: Any) -> Settings:
    s = getattr(task.app, "memsvc_settings", None)
    if s is None:
        s = task.app.memsvc_settings = Settings()
    return s  # type: ignore[no-any-return]


def _service(task: Any, tenant: str | None) -> MemoryService:
    svc = getattr(task.app, "memsvc_service", None)
    if svc is None:
        with _guard:  # one service per worker process: models and connections load once
            svc = getattr(task.app, "memsvc_service", None)
            if svc is None:
                from memsvc.service import MemoryService

                svc = task.app.memsvc_service = MemoryService(_settings(task))
    return svc if tenant is None or tenant == svc.tenant else svc.with_tenant(tenant)


def _locks(task: Any) -> UserLocks:
    locks = getattr(task.app, "memsvc_locks", None)
    if locks is None:
        s = _settings(task)
        url = s.broker_url
        if url.startswith(("redis://", "rediss://")):
            locks = RedisLocks(url, s.worker.lock_timeout_s)
        else:  # RabbitMQ broker: workers on one machine share the data directory
            locks = FileLocks(s.data_dir / "locks")
        task.app.memsvc_locks = locks
    return locks  # type: ignore[no-any-return]


def _retry_or_raise(task: Any, exc: MemsvcError) -> NoReturn:
    w = _settings(task).worker
    if exc.is_retryable and task.request.retries < w.max_retries:
        raise task.retry(exc=exc, countdown=w.retry_backoff_s * 2**task.request.retries, max_retries=w.max_retries)
    raise exc


@shared_task(bind=True, name="memsvc.consolidate_user")
def consolidate_user_task(self: Any, tenant: str, user: str, jobs: list[str] | None = None,
                          now: str | None = None) -> dict[str, Any]:
    """Run one user's consolidation jobs (all by default) under the user's lock."""
    try:
        svc = _service(self, tenant)
        when = datetime.fromisoformat(now) if now else None
        return consolidate_user(svc, user, when, jobs, locks=_locks(self))
    except MemsvcError as exc:
        _retry_or_raise(self, exc)


@shared_task(bind=True, name="memsvc.tick")
def tick(self: Any, tenant: str | None = None, jobs: list[str] | None = None, all_users: bool = False,
         now: str | None = None) -> dict[str, int]:
    """Close idle episodes and queue ``consolidate_user`` for every user with work (or every user)."""
    try:
        svc = _service(self, None)
        tenants = [tenant] if tenant else store(svc).tenants()
        queued = closed = 0
        for t in tenants:
            view = svc.with_tenant(t)
            closed += close_idle_episodes(view)
            users = store(view).users(t) if all_users else users_with_work(view)
            for u in users:
                consolidate_user_task.apply_async((t, u), {"jobs": jobs, "now": now})
                queued += 1
        return {"queued": queued, "episodes_closed": closed}
    except MemsvcError as exc:
        _retry_or_raise(self, exc)


@shared_task(bind=True, name="memsvc.reconcile")
def reconcile_task(self: Any, tenant: str | None = None) -> dict[str, Any]:
    """Re-index what SQL has and the index lacks, drop orphan vectors, build HNSW when due."""
    try:
        svc = _service(self, tenant)
        out: dict[str, Any] = dict(reconcile(svc))
        optimize = getattr(svc.vectors, "optimize", None)
        out["index_optimized"] = bool(optimize()) if callable(optimize) else False
        return out
    except MemsvcError as exc:
        _retry_or_raise(self, exc)


@shared_task(bind=True, name="memsvc.index_pending")
def index_pending(self: Any) -> int:
    """Index units left pending or stale."""
    try:
        return _service(self, None).repair()
    except MemsvcError as exc:
        _retry_or_raise(self, exc)
