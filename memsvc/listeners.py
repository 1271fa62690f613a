"""Unit listeners: state derived from memory units outside SQL and the indexes (the GPU runtime's
episode KV store) learns when units change or go away.

    UnitListener (Protocol) --> memsvc.gpu.kv_files.EpisodeKVInvalidator
    UnitChange                  what happened to which units of one user, and why

``MemoryService`` keeps a list of listeners (``add_listener``; the episode KV invalidator is added
when ``settings.gpu.episode_kv_dir`` is set) and calls them after the SQL write, from:

* ``delete`` of an event or unit: ``deleted`` for every unit removed, ``changed`` for episodes and
  scenes rebuilt from their remaining events (``deleted`` when none remain);
* ``delete_stream``: ``deleted``; ``delete_user``: ``user_deleted`` with every unit id of the user;
* consolidation: ``changed`` for units whose text is rewritten (decay compression, recompress),
  ``evicted`` for units that leave memory but may come back with the same text (decay soft-delete,
  near-duplicates merged into one unit), ``deleted`` for units removed (superseded summaries, merges no
  longer wanted; decay's hard deletes and exact dedupe go through ``delete``).

A listener must be idempotent and ignore ids it does not know. Its errors are logged, never raised:
the SQL truth has already changed and the caller's operation succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from memsvc.stores.base import Scope

__all__ = ["ChangeKind", "UnitChange", "UnitListener", "notify"]

log = logging.getLogger("memsvc.listeners")

ChangeKind = Literal["changed", "evicted", "deleted", "user_deleted"]


@dataclass(frozen=True)
class UnitChange:
    """Units of one user that changed or went away.

    Attributes:
        kind: ``changed`` (text rewritten), ``evicted`` (out of memory, restorable with the same
            text), ``deleted`` (gone for good; unit ids are never reused) or ``user_deleted`` (the
            whole user; ``unit_ids`` lists every unit the user had).
        scope: the tenant and user.
        unit_ids: the affected unit ids, sorted.
        cause: the operation, e.g. ``delete``, ``rebuild``, ``merge``, ``recompress``, ``decay``.
    """

    kind: ChangeKind
    scope: Scope
    unit_ids: tuple[str, ...]
    cause: str


class UnitListener(Protocol):
    """Told about unit changes after they are committed to SQL."""

    def units_changed(self, change: UnitChange) -> None:
        """React to ``change`` (idempotent; unknown ids are ignored)."""
        ...


def notify(
    listeners: Iterable[UnitListener], kind: ChangeKind, scope: Scope, unit_ids: Iterable[str], cause: str
) -> None:
    """Tell every listener; a failing listener is logged and the others still run."""
    ids = tuple(sorted(set(unit_ids)))
    if not ids and kind != "user_deleted":
        return
    change = UnitChange(kind, scope, ids, cause)
    for listener in listeners:
        try:
            listener.units_changed(change)
        except Exception:  # noqa: BLE001 - the committed operation must not fail on a cache
            log.exception("unit listener %r failed on %s %s of %d units", listener, cause, kind, len(ids))
