"""The episode KV store's files, without torch: layout, header reads, invalidation and tombstones.

    EpisodeKVFiles             layout, entries, invalidate / invalidate_scope, tombstones
      └── memsvc.gpu.episode_store.EpisodeKVStore   put / get / load (torch, safetensors)
    EpisodeKVInvalidator       the ``memsvc.listeners.UnitListener`` that ``MemoryService`` calls

``MemoryService`` imports this module (never torch) when ``settings.gpu.episode_kv_dir`` is set, so
deletes and consolidation reach the store in every process (API, worker, SDK), GPU or not.

Layout under ``root``: ``<sha256(unit_id)[:20]>/<content_hash[:16]>-<spec_hash[:12]>.safetensors``,
plus ``INVALIDATED.json`` in a unit's directory once its entries were invalidated::

    {"final": true|false, "hashes": {content_hash: kind}, "events": [{"kind", "cause", "at"}]}

``final`` (the unit was deleted; ids are never reused): nothing is stored or loaded for the unit again.
Otherwise ``hashes`` names the texts whose caches were dropped: loading one raises
:class:`~memsvc.exceptions.KVCacheInvalidated`, and storing one again is refused when its unit's text was
rewritten (``changed`` by a rebuild or compression) — a caller holding the old text must not bring its
cache back. A cache for the unit's new text is stored as usual, and so is one for a unit that was only
``evicted`` (soft-deleted, merged) and came back with the same text.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from memsvc.exceptions import KVCacheInvalidated
from memsvc.listeners import UnitChange

__all__ = ["META_KEY", "TOMBSTONE", "EpisodeKVFiles", "EpisodeKVInvalidator", "read_meta"]

META_KEY = "memsvc_episode_kv"
TOMBSTONE = "INVALIDATED.json"
_MAX_HEADER = 100 * 1024 * 1024


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_meta(path: Path | str) -> dict[str, Any]:
    """The memsvc metadata in a safetensors file's header (read directly: 8-byte little-endian
    header length, then the JSON header; no torch). Raises ``ValueError`` for a foreign file."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: not a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER:
            raise ValueError(f"{path}: header of {n} bytes")
        header = json.loads(f.read(n))
    raw = (header.get("__metadata__") or {}).get(META_KEY)
    if raw is None:
        raise ValueError(f"{path}: no {META_KEY} metadata")
    return json.loads(raw)  # type: ignore[no-any-return]


class EpisodeKVFiles:
    """The files of an episode KV store under ``root``: listing, invalidation, tombstones."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    @staticmethod
    def content_hash(text_or_ids: str | Iterable[int]) -> str:
        """sha256 of an episode's text (or of its token ids)."""
        if isinstance(text_or_ids, str):
            return _sha(text_or_ids)
        return _sha(",".join(str(int(t)) for t in text_or_ids))

    def _unit_dir(self, unit_id: str) -> Path:
        return self.root / _sha(str(unit_id))[:20]

    # -- tombstones -------------------------------------------------------------------------------
    def tombstone(self, unit_id: str) -> dict[str, Any] | None:
        """The unit's invalidation record, or ``None`` when it was never invalidated."""
        path = self._unit_dir(unit_id) / TOMBSTONE
        try:
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None
        except ValueError:  # torn or foreign: treat as final, the safe side
            return {"final": True, "hashes": {}, "events": []}

    def _write_tombstone(self, d: Path, record: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            os.replace(tmp, d / TOMBSTONE)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def check_load(self, unit_id: str, content_hash: str | None) -> None:
        """Raise ``KVCacheInvalidated`` when the unit was deleted, or the cache of this text (any text
        when ``content_hash`` is None) was invalidated."""
        t = self.tombstone(unit_id)
        if t is None:
            return
        if t.get("final") or content_hash is None or content_hash in t.get("hashes", {}):
            last = (t.get("events") or [{}])[-1]
            raise KVCacheInvalidated(
                f"the KV cache of unit {unit_id!r} was invalidated "
                f"({last.get('kind', 'deleted')} by {last.get('cause', 'unknown')})"
            )

    def check_store(self, unit_id: str, content_hash: str) -> None:
        """Raise ``KVCacheInvalidated`` when the unit was deleted or this text was rewritten."""
        t = self.tombstone(unit_id)
        if t is not None and (t.get("final") or t.get("hashes", {}).get(content_hash) == "changed"):
            raise KVCacheInvalidated(
                f"unit {unit_id!r} was {'deleted' if t.get('final') else 'rewritten'}: its KV cache "
                "for this text cannot be stored"
            )

    def _restored(self, unit_id: str, content_hash: str) -> None:
        """A cache of this text was stored again (after an eviction): loads of it succeed again."""
        d = self._unit_dir(unit_id)
        t = self.tombstone(unit_id)
        if t is not None and content_hash in t.get("hashes", {}):
            t["hashes"].pop(content_hash)
            self._write_tombstone(d, t)

    # -- listing ----------------------------------------------------------------------------------
    def entry_paths(self, unit_id: str | None = None) -> list[Path]:
        """Stored cache files (of one unit when given)."""
        if unit_id is not None:
            d = self._unit_dir(unit_id)
            return sorted(d.glob("*.safetensors")) if d.is_dir() else []
        return sorted(self.root.glob("*/*.safetensors")) if self.root.is_dir() else []

    def entries(self, unit_id: str | None = None) -> list[dict[str, Any]]:
        """Metadata of every stored entry (of one unit when given)."""
        return [read_meta(f) for f in self.entry_paths(unit_id)]

    def nbytes(self) -> int:
        """Disk bytes used by the stored caches."""
        return sum(f.stat().st_size for f in self.entry_paths())

    # -- invalidation -------------------------------------------------------------------------------
    def _invalidate_dir(self, d: Path, kind: str, cause: str, files: list[Path] | None = None) -> int:
        files = sorted(d.glob("*.safetensors")) if files is None else files
        hashes: dict[str, str] = {}
        for f in files:
            try:
                h = read_meta(f).get("content_hash")
            except (OSError, ValueError):
                h = None
            if h:
                hashes[h] = kind
            f.unlink(missing_ok=True)
        old = None
        with contextlib.suppress(FileNotFoundError, ValueError):
            old = json.loads((d / TOMBSTONE).read_text())
        record = old or {"final": False, "hashes": {}, "events": []}
        record["final"] = bool(record.get("final")) or kind not in ("changed", "evicted")
        record["hashes"] = {**record.get("hashes", {}), **hashes}
        record["events"] = [*record.get("events", [])[-9:], {"kind": kind, "cause": cause, "at": time.time()}]
        self._write_tombstone(d, record)
        return len(files)

    def invalidate(self, unit_ids: Iterable[str], kind: str = "deleted", cause: str = "invalidate") -> int:
        """Drop every stored cache of these units and leave a tombstone; returns the files removed.

        ``kind="deleted"`` (or ``user_deleted``): the units are gone for good; later loads and stores
        for them raise ``KVCacheInvalidated``. ``kind="changed"``: the caches of their current texts
        are dropped; a cache of a new text may be stored. Units that never had a cache are skipped
        (no directory is made for them); unknown ids are ignored. ``kind="evicted"``: like ``changed``,
        but the same text may be stored again (the unit can come back unchanged)."""
        removed = 0
        for uid in unit_ids:
            d = self._unit_dir(uid)
            if d.is_dir():
                removed += self._invalidate_dir(d, kind, cause)
        return removed

    def invalidate_scope(self, scope: str, cause: str = "delete_user") -> int:
        """Drop every entry written with this ``scope`` (``"<tenant>/<user>"``) and mark its unit
        deleted. Scans entry headers; returns the number of files removed."""
        by_dir: dict[Path, list[Path]] = {}
        for f in self.entry_paths():
            try:
                hit = read_meta(f).get("scope") == scope
            except (OSError, ValueError):  # unreadable or foreign file: leave it alone
                continue
            if hit:
                by_dir.setdefault(f.parent, []).append(f)
        return sum(self._invalidate_dir(d, "deleted", cause, files) for d, files in by_dir.items())


class EpisodeKVInvalidator:
    """Keeps an episode KV store in step with memory: the unit listener ``MemoryService`` installs
    when ``settings.gpu.episode_kv_dir`` is set (see ``memsvc.listeners``)."""

    def __init__(self, root: Path | str) -> None:
        self.files = EpisodeKVFiles(root)

    def units_changed(self, change: UnitChange) -> None:
        """``deleted``/``user_deleted``: the units' caches go for good; ``changed``/``evicted``: the
        caches of their current texts go."""
        self.files.invalidate(change.unit_ids, change.kind, change.cause)
        if change.kind == "user_deleted":
            self.files.invalidate_scope(f"{change.scope.tenant}/{change.scope.user}", change.cause)

    def __repr__(self) -> str:
        return f"EpisodeKVInvalidator({str(self.files.root)!r})"
