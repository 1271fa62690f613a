"""The frame-space index: scene representative vectors in their own vector store, one per size.

Frame embeddings (a client's vision encoder, or the configured image embedder) live in another space
than the text index, so they get their own ``VectorStore``, created lazily per dimension next to the
text index (``<data_dir>/frames-<dim>`` for qdrant-edge, collection ``<collection>-frames-<dim>`` for a
Qdrant server). Known dimensions are recorded in SQL (``index_meta``) so deletes reach every one.

Point ids are derived from the scene id (scene ids end in four zero bits): representative ``k``
(1..15) of scene ``s`` is ``s | k``, so a hit maps back to its scene without a lookup and deleting a
scene deletes ``s | 1 .. s | 15``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from memsvc.stores import VECTOR_STORES, Scope, VectorStore

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["MAX_REPS", "FrameIndex", "new_scene_id", "rep_id", "scene_of"]

MAX_REPS = 15
_META_KEY = "frame_dims"


def new_scene_id() -> str:
    """A random UUID whose low four bits are zero (room for representative ids)."""
    return str(uuid.UUID(int=uuid.uuid4().int & ~0xF))


def rep_id(scene_id: str, k: int) -> str:
    """Point id of representative ``k`` (1..15) of a scene."""
    return str(uuid.UUID(int=uuid.UUID(scene_id).int | k))


def scene_of(point_id: str) -> str:
    return str(uuid.UUID(int=uuid.UUID(point_id).int & ~0xF))


def rep_ids(scene_ids: Iterable[str], start: int = 1) -> list[str]:
    """Every possible representative point id of these scenes from ``start`` on."""
    out = []
    for s in scene_ids:
        try:
            out += [rep_id(s, k) for k in range(start, MAX_REPS + 1)]
        except ValueError:
            continue
    return out


class FrameIndex:
    """Lazily opened frame-space vector stores of one service."""

    def __init__(self, svc: MemoryService) -> None:
        self.svc = svc
        self._stores: dict[int, VectorStore] = {}
        self._lock = threading.Lock()

    def dims(self) -> list[int]:
        raw = self.svc.sql.meta().get(_META_KEY, "")
        return sorted({int(x) for x in raw.split(",") if x.strip()})

    def _options(self, dim: int) -> tuple[str, dict[str, object]]:
        from memsvc.service import _vector_options

        s = self.svc.settings
        backend = s.video.frame_backend or s.vector.backend
        opts: dict[str, object] = dict(_vector_options(s, dim)) if backend == s.vector.backend else {"dim": dim}
        if backend == "qdrant-edge":
            opts["path"] = str(s.data_dir / f"frames-{dim}")
        elif backend == "qdrant":
            opts["collection"] = f"{s.vector.collection}-frames-{dim}"
        return backend, opts

    def store(self, dim: int, create: bool = True) -> VectorStore | None:
        with self._lock:
            if dim in self._stores:
                return self._stores[dim]
            known = self.dims()
            if dim not in known and not create:
                return None
            backend, opts = self._options(dim)
            self._stores[dim] = VECTOR_STORES.create(backend, **opts)
            if dim not in known:
                self.svc.sql.set_meta({_META_KEY: ",".join(str(d) for d in sorted({*known, dim}))})
            return self._stores[dim]

    def all(self) -> list[VectorStore]:
        return [s for d in self.dims() if (s := self.store(d, create=False)) is not None]

    def delete_scenes(self, scene_ids: Sequence[str]) -> None:
        ids = rep_ids(scene_ids)
        if ids:
            for st in self.all():
                st.delete(ids)

    def delete_scope(self, scope: Scope) -> None:
        for st in self.all():
            st.delete_scope(scope)

    def count(self, scope: Scope | None = None) -> int:
        return sum(st.count(scope) for st in self.all())

    def close(self) -> None:
        with self._lock:
            for st in self._stores.values():
                st.flush()
                st.close()
            self._stores.clear()
