"""Consolidation: background jobs that keep memory small, fresh and correct.

Jobs are plain functions over a ``MemoryService`` (the Celery tasks in ``memsvc.worker``, the embedded
scheduler and ``Memory.consolidate()`` all call these):

    dedupe_exact            remove turns written twice by retried writes
    extract_turns           each chat turn's extract (its summary line), packed where shorter
    supersede               statements "I moved to X" end older ones about the same attribute
    summarize_episodes      closed episodes -> extractive (or LLM) episode summaries
    summarize_semantic      episode summaries -> per-user daily and topic memories
    merge_near_duplicates   near-duplicate turns -> one merged unit with every source
    decay                   retention = importance * exp(-t/S); compress, soft- then hard-delete
    recompress              old episodes re-compressed; vectors re-quantized (hook)
    reconcile               SQL truth vs vector index: re-index missing, drop orphans
    close_idle_episodes     close episodes of sessions that went quiet
"""

from __future__ import annotations

from memsvc.consolidation.decay import AccessLog, decay, retention
from memsvc.consolidation.dedupe import dedupe_exact, merge_near_duplicates
from memsvc.consolidation.extracts import apply_extracts, extract_turns
from memsvc.consolidation.facts import Fact, extract_facts, supersede
from memsvc.consolidation.locks import FileLocks, LocalLocks, LockBusy, RedisLocks, UserLocks
from memsvc.consolidation.maintenance import close_idle_episodes, recompress, reconcile
from memsvc.consolidation.runner import DEFAULT_JOBS, JOBS, consolidate, consolidate_user, users_with_work
from memsvc.consolidation.summarize import summarize_episodes, summarize_semantic

__all__ = [
    "DEFAULT_JOBS",
    "JOBS",
    "AccessLog",
    "Fact",
    "FileLocks",
    "LocalLocks",
    "LockBusy",
    "RedisLocks",
    "UserLocks",
    "apply_extracts",
    "close_idle_episodes",
    "consolidate",
    "consolidate_user",
    "decay",
    "dedupe_exact",
    "extract_facts",
    "extract_turns",
    "merge_near_duplicates",
    "recompress",
    "reconcile",
    "retention",
    "summarize_episodes",
    "summarize_semantic",
    "supersede",
    "users_with_work",
]
