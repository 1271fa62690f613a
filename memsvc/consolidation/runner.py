"""Run the consolidation jobs: for one user (what a Celery task does) or for a whole tenant (what
``Memory.consolidate()`` and the embedded scheduler do).

Order for a user: close idle episodes -> exact dedupe -> facts/supersede -> turn extracts -> episode summaries -> daily/topic memories ->
near-duplicate merge -> decay -> recompress. Every step is idempotent and commits in small
transactions, so the whole run is safe to kill and to repeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memsvc.consolidation._common import store
from memsvc.consolidation.decay import decay
from memsvc.consolidation.dedupe import dedupe_exact, merge_near_duplicates
from memsvc.consolidation.extracts import extract_turns
from memsvc.consolidation.facts import supersede
from memsvc.consolidation.locks import LocalLocks, UserLocks
from memsvc.consolidation.maintenance import (
    close_idle_episodes,
    close_idle_user_episodes,
    recompress,
    reconcile,
)
from memsvc.consolidation.summarize import summarize_episodes, summarize_semantic
from memsvc.stores import Scope

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["DEFAULT_JOBS", "JOBS", "consolidate", "consolidate_user", "local_locks"]

Job = Callable[["MemoryService", Scope, datetime], dict[str, int]]


def _count(name: str, fn: Callable[..., int]) -> Job:
    return lambda svc, scope, now: {name: fn(svc, scope)}


JOBS: dict[str, Job] = {
    "close": lambda svc, scope, now: {"episodes_closed": close_idle_user_episodes(svc, scope, now)},
    "dedupe": _count("duplicates_removed", dedupe_exact),
    "supersede": lambda svc, scope, now: supersede(svc, scope),
    "extract": lambda svc, scope, now: extract_turns(svc, scope),
    "summarize": lambda svc, scope, now: summarize_episodes(svc, scope),
    "semantic": lambda svc, scope, now: summarize_semantic(svc, scope),
    "merge": _count("near_duplicates_merged", merge_near_duplicates),
    "decay": lambda svc, scope, now: decay(svc, scope, now),
    "recompress": lambda svc, scope, now: recompress(svc, scope, now),
}
"""Per-user jobs by name, in the order they run."""

DEFAULT_JOBS: tuple[str, ...] = tuple(JOBS)
TIMED = frozenset({"decay", "recompress"})
"""Jobs driven by the clock rather than by new data: they run even when nothing changed."""


def local_locks(svc: MemoryService) -> UserLocks:
    """The in-process per-user locks shared by every view of ``svc``."""
    locks = svc.__dict__.get("_consolidation_locks")
    if locks is None:
        locks = svc.__dict__.setdefault("_consolidation_locks", LocalLocks())
    return locks  # type: ignore[no-any-return]


def consolidate_user(
    svc: MemoryService, user: str, now: datetime | None = None, jobs: Sequence[str] | None = None,
    locks: UserLocks | None = None, wait_s: float = 0.0,
) -> dict[str, Any]:
    """Run ``jobs`` (default: all) for one user under the user's lock; returns what each did."""
    now = now or datetime.now(UTC)
    scope = svc.scope(user)
    names = [j for j in JOBS if j in (DEFAULT_JOBS if jobs is None else jobs)]
    unknown = set(jobs or ()) - set(JOBS)
    if unknown:
        from memsvc.exceptions import ConfigError

        raise ConfigError(f"unknown consolidation jobs {sorted(unknown)}; known: {', '.join(JOBS)}")
    report: dict[str, Any] = {"user": user}
    with (locks or local_locks(svc)).hold(scope.tenant, scope.user, wait_s):
        t0 = time.perf_counter()
        for name in names:
            report.update(JOBS[name](svc, scope, now))
        report["seconds"] = round(time.perf_counter() - t0, 3)
        if set(DEFAULT_JOBS) - TIMED <= set(names):  # a complete pass: the user has no work until it changes
            st = store(svc)
            st.set_state(scope.tenant, scope.user, "run", st.fingerprint(scope), {"at": now.isoformat()})
    return report


def users_with_work(svc: MemoryService) -> list[str]:
    """Users whose events or units changed since their last complete run."""
    st = store(svc)
    out = []
    for user in st.users(svc.tenant):
        mark, _ = st.get_state(svc.tenant, user, "run")
        if mark != st.fingerprint(Scope(svc.tenant, user)):
            out.append(user)
    return out


def consolidate(svc: MemoryService, now: datetime | None = None, jobs: Sequence[str] | None = None,
                users: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the jobs now for the tenant: close idle episodes, every user with work (all users for
    decay), then reconcile the index and build its HNSW graph when due."""
    now = now or datetime.now(UTC)
    unknown = set(jobs or ()) - set(JOBS)
    if unknown:  # before anything runs: a refused call changes nothing
        from memsvc.exceptions import ConfigError

        raise ConfigError(f"unknown consolidation jobs {sorted(unknown)}; known: {', '.join(JOBS)}")
    access = getattr(svc, "access", None)
    if access is not None:
        access.flush(svc, now)
    report: dict[str, Any] = {"episodes_closed": close_idle_episodes(svc, now=now)}
    changed = users_with_work(svc) if users is None else list(users)
    todo = [(u, jobs) for u in changed]
    if users is None and (jobs is None or TIMED & set(jobs)):  # the clock-driven jobs look at everyone
        timed = [j for j in (jobs or DEFAULT_JOBS) if j in TIMED]
        todo += [(u, timed) for u in store(svc).users(svc.tenant) if u not in set(changed)]
    totals: dict[str, int] = {}
    for user, names in todo:
        r = consolidate_user(svc, user, now, names, wait_s=60.0)
        for k, v in r.items():
            if isinstance(v, int) and not isinstance(v, bool):
                totals[k] = totals.get(k, 0) + v
    report.update(totals)
    report["users"] = len(changed)
    report.update(reconcile(svc))
    optimize = getattr(svc.vectors, "optimize", None)
    report["index_optimized"] = bool(optimize()) if callable(optimize) else False
    return report
