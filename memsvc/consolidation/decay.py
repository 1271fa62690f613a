"""Decay / forget: Ebbinghaus-style retention with strength that grows on retrieval (MemoryBank).

    R = importance * exp(-t / S)     t: days since the unit was stored or last retrieved
                                     S = strength * strength_days; each retrieval adds strength_growth

(MemoryBank's public code computes ``exp(-t / 5*S)``, which Python reads as exp(-t*S/5): stronger
memories would fade faster. Here S divides t.) Below ``compress_below`` a unit is compressed once
(extractive, ``compress_rate`` of its tokens; events keep the original text), below ``forget_below``
it is soft-deleted (``deleted_at``; out of search; restorable) and ``grace_days`` later hard-deleted
with everything derived from it. Pinned units never decay. Settings are per tenant.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from memsvc.compressors.base import Passage, SummaryRequest
from memsvc.compressors.summary.extractive import denoise
from memsvc.config import DecayConfig
from memsvc.consolidation._common import config, index_units, store, summarizer
from memsvc.consolidation.extracts import text_digest
from memsvc.stores import Scope
from memsvc.stores.sql_schema import UnitRow
from memsvc.tokens import count_tokens

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["AccessLog", "compress_unit_text", "decay", "retention"]


def retention(importance: float, age_days: float, strength: float, strength_days: float) -> float:
    """R = importance * exp(-t / S) with S = strength * strength_days (in days)."""
    s = max(strength, 1e-6) * strength_days
    return importance * math.exp(-max(age_days, 0.0) / s)


class AccessLog:
    """Counts retrievals in memory (no write in the search path); ``flush`` stores them."""

    def __init__(self, flush_every: int = 1_000) -> None:
        self.flush_every = flush_every
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, ids: list[str]) -> bool:
        """Count one retrieval of each id; True when the buffer is due for a flush."""
        with self._lock:
            self._counts.update(ids)
            return len(self._counts) >= self.flush_every

    def flush(self, svc: MemoryService, now: datetime | None = None) -> int:
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        if counts:
            growth = svc.settings.consolidation.decay.strength_growth
            store(svc).record_access(counts, now or datetime.now(UTC), growth)
        return len(counts)


def compress_unit_text(svc: MemoryService, u: UnitRow, rate: float) -> str:
    """``u``'s text compressed to about ``rate`` of its tokens (an extract, never longer)."""
    lines = [ln for ln in u.text.split("\n") if ln.strip()]
    if len(lines) <= 1:
        return denoise(u.text, keep_share=max(rate, 0.5))
    summ = summarizer(svc, config(svc))
    out = summ.summarize([SummaryRequest([Passage(text=ln) for ln in lines], max(8, int(rate * u.token_count)))])[0]
    return out.text or lines[0]


def decay(svc: MemoryService, scope: Scope, now: datetime | None = None) -> dict[str, int]:
    """Compress, soft-delete and hard-delete the user's fading units."""
    now = now or datetime.now(UTC)
    cfg: DecayConfig = config(svc).decay
    if not cfg.enabled:
        return {"compressed": 0, "soft_deleted": 0, "hard_deleted": 0}
    st = store(svc)
    hard = st.soft_deleted_before(scope, now - timedelta(days=cfg.grace_days))
    for uid in hard:
        with contextlib.suppress(KeyError):  # gone already, derived from an earlier one
            svc.delete(uid, scope.user)
    compress: list[UnitRow] = []
    forget: list[str] = []
    for u in st.live_units(scope, list(cfg.levels)):
        if u.pinned or u.status == "open":
            continue
        seen = max(u.created_at, u.last_accessed) if u.last_accessed else u.created_at
        r = retention(u.importance, (now - seen).total_seconds() / 86_400, u.strength, cfg.strength_days)
        if r < cfg.forget_below:
            forget.append(u.id)
        elif r < cfg.compress_below and not (u.meta or {}).get("compressed") and u.text:
            compress.append(u)
    if forget:
        st.update_units({i: {"deleted_at": now, "status": "deleted"} for i in forget})
        svc.vectors.delete(forget)
        if svc.lexical is not None:
            svc.lexical.delete(forget)
        svc.notify("evicted", scope, forget, "decay")
    changed: list[UnitRow] = []
    for u in compress:
        text = compress_unit_text(svc, u, cfg.compress_rate)
        meta = {**(u.meta or {}), "compressed": cfg.compress_rate}
        if "extract_of" in meta:  # the compressed text is its own extract
            meta.update(extract=None, extract_of=text_digest(text))
        st.update_units({u.id: {"text": text, "token_count": count_tokens(text), "meta": meta, "index_state": "stale"}})
        u.text = text
        changed.append(u)
    index_units(svc, changed)
    svc.notify("changed", scope, [u.id for u in changed], "decay")
    return {"compressed": len(changed), "soft_deleted": len(forget), "hard_deleted": len(hard)}
