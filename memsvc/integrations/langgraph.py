"""LangGraph long-term memory store over memsvc (``pip install 'memsvc[langgraph]'``).

    BaseStore --> MemsvcStore

Mapping: the tenant is the memory's (``Memory.for_tenant`` or the API key's); a namespace is
``(user_id, *labels)``; an item is one memsvc chat event of that user, in the session
``"lgstore:" + ".".join(namespace)``, whose text is what gets embedded (the ``index`` fields, or the
whole value as JSON) and whose metadata keeps the key, namespace and value. So items are ordinary
long-term memories of the user: ``Memory.search``, ``context`` and ``delete_user`` see them too.

    store = MemsvcStore(Memory())                          # or MemsvcClient(url, key)
    store.put(("ann", "prefs"), "food", {"text": "Ann is vegetarian"})
    store.search(("ann",), query="what does Ann eat?")     # semantic, scored
    graph = builder.compile(store=store)

Limits (memsvc is an event memory, not a key-value database): ``get``, ``put`` and filtered
``search`` read the namespace's events (or, for a prefix, all of the user's) page by page, so they cost
O(events of that user); ``list_namespaces`` needs a first label (the user id) in its prefix; TTLs are
not supported; ``filter`` matches top-level value fields by equality or ``$eq/$ne/$gt/$gte/$lt/$lte``.
The async methods run the sync ones in a worker thread; pass a sync memory (``AsyncMemory`` is
unwrapped to its ``Memory``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from langgraph.store.base.embed import get_text_at_path

from memsvc.exceptions import InvalidInputError
from memsvc.models import MemoryRecord

__all__ = ["MemsvcStore"]

_META = "langgraph"
_PREFIX = "lgstore:"


def _session(ns: tuple[str, ...]) -> str:
    if not ns or not all(isinstance(p, str) and p for p in ns):
        raise InvalidInputError("a namespace is (user_id, *labels) with non-empty string labels")
    return _PREFIX + ".".join(ns)


def _match(value: dict[str, Any], flt: dict[str, Any] | None) -> bool:
    ops = {"$eq": lambda a, b: a == b, "$ne": lambda a, b: a != b, "$gt": lambda a, b: a > b,
           "$gte": lambda a, b: a >= b, "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b}
    for field, want in (flt or {}).items():
        have = value.get(field)
        if isinstance(want, dict) and want and all(k in ops for k in want):
            try:
                if not all(ops[k](have, v) for k, v in want.items()):
                    return False
            except TypeError:
                return False
        elif have != want:
            return False
    return True


class MemsvcStore(BaseStore):
    """A LangGraph ``BaseStore`` whose items are memsvc memories (see the module docstring)."""

    supports_ttl = False

    def __init__(self, memory: Any, *, page_size: int = 1000, candidates: int = 100) -> None:
        self.memory = getattr(memory, "sync", memory)
        if asyncio.iscoroutinefunction(getattr(self.memory, "search", None)):
            raise TypeError("MemsvcStore needs a sync memory (Memory or MemsvcClient)")
        self.page_size = page_size
        self.candidates = candidates

    # -- storage mapping ---------------------------------------------------------------------------
    def _scan(self, user: str, session: str | None) -> Iterator[tuple[MemoryRecord, dict[str, Any]]]:
        offset = 0
        while True:
            page = self.memory.history(user, session_id=session, limit=self.page_size, offset=offset)
            for rec in page:
                info = rec.metadata.get(_META)
                if isinstance(info, dict) and "key" in info:
                    yield rec, info
            if len(page) < self.page_size:
                return
            offset += len(page)

    def _find(self, ns: tuple[str, ...], key: str) -> list[tuple[MemoryRecord, dict[str, Any]]]:
        return [(r, i) for r, i in self._scan(ns[0], _session(ns)) if i["key"] == key]

    @staticmethod
    def _item(rec: MemoryRecord, info: dict[str, Any], score: float | None = None) -> SearchItem:
        created = datetime.fromisoformat(info["created"]) if info.get("created") else rec.start_time
        return SearchItem(tuple(info["ns"]), info["key"], info["value"], created, rec.start_time, score)

    def _put(self, op: PutOp) -> None:
        ns = tuple(op.namespace)
        old = self._find(ns, op.key)
        if op.value is not None:
            value = dict(op.value)
            if op.index is False:
                text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
            elif op.index:
                text = "\n".join(t for path in op.index for t in get_text_at_path(value, path))
            else:
                text = value["text"] if isinstance(value.get("text"), str) else \
                    json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
            created = old[0][1].get("created") if old else None
            info = {"ns": list(ns), "key": op.key, "value": value, "indexed": op.index is not False,
                    "created": created or datetime.now().astimezone().isoformat()}
            self.memory.add([{"role": "user", "name": "memory", "content": text or op.key,
                              "metadata": {_META: info}}], user_id=ns[0], session_id=_session(ns))
        for rec, _ in old:
            self.memory.delete(rec.id, ns[0])

    def _get(self, op: GetOp) -> Item | None:
        found = self._find(tuple(op.namespace), op.key)
        if not found:
            return None
        it = self._item(*found[-1])
        return Item(value=it.value, key=it.key, namespace=it.namespace, created_at=it.created_at,
                    updated_at=it.updated_at)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        if not prefix:
            raise InvalidInputError("search needs a namespace prefix that starts with the user id")
        _session(prefix)  # validates the labels
        latest: dict[tuple[tuple[str, ...], str], tuple[MemoryRecord, dict[str, Any]]] = {}
        for rec, info in self._scan(prefix[0], None):  # a prefix may match deeper namespaces
            ns = tuple(info["ns"])
            if ns[: len(prefix)] == prefix and _match(info["value"], op.filter):
                latest[(ns, info["key"])] = (rec, info)
        pool = list(latest.values())
        if op.query:
            hits = self.memory.search(op.query, prefix[0], limit=min(self.candidates, 100), levels=["turn"])
            score = {h.id: h.score for h in hits}
            scored = [(score[r.id], r, i) for r, i in pool if r.id in score and i.get("indexed", True)]
            scored.sort(key=lambda t: -t[0])
            items = [self._item(r, i, s) for s, r, i in scored]
        else:
            items = [self._item(r, i) for r, i in reversed(pool)]
        return items[op.offset: op.offset + op.limit]

    def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conds = list(op.match_conditions or ())
        user = next((c.path[0] for c in conds if c.match_type == "prefix" and c.path and c.path[0] != "*"), None)
        if user is None:
            raise InvalidInputError("list_namespaces needs prefix=(user_id, ...): memsvc lists per user")
        seen: set[tuple[str, ...]] = set()
        for _, info in self._scan(user, None):
            ns = tuple(info["ns"])
            if all(self._cond(ns, c.match_type, tuple(c.path)) for c in conds):
                seen.add(ns[: op.max_depth] if op.max_depth is not None else ns)
        return sorted(seen)[op.offset: op.offset + op.limit]

    @staticmethod
    def _cond(ns: tuple[str, ...], kind: str, path: tuple[str, ...]) -> bool:
        part = ns[: len(path)] if kind == "prefix" else ns[len(ns) - len(path):]
        return len(ns) >= len(path) and all(p == "*" or p == q for p, q in zip(path, part, strict=True))

    # -- BaseStore ---------------------------------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        out: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                out.append(self._get(op))
            elif isinstance(op, PutOp):
                if op.ttl is not None:
                    raise InvalidInputError("MemsvcStore does not support TTLs")
                self._put(op)
                out.append(None)
            elif isinstance(op, SearchOp):
                out.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                out.append(self._namespaces(op))
            else:
                raise InvalidInputError(f"unknown store operation {type(op).__name__}")
        return out

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))
