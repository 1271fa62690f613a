"""Budget packing: choose hits in rank order that fit a token budget, then lay them out in time order.

``Memory.context`` is exactly ``format_context(hits)`` for the hits ``Memory.search(budget_tokens=B)``
returns, in that order: chronological, consecutive hits of one session under one date header::

    [8 May 2023]
    Caroline: I went to a LGBTQ support group yesterday [2023-05-07] and it was so powerful.
    Melanie: Wow, that's cool, Caroline! What happened that was so awesome?
    [25 May 2023]
    Caroline: ...

A header opens when the session or stream changes or the day changes. One short header (7 tokens) per
group instead of a date per unit (12 tokens) leaves room for about a third more turns at 1,000 tokens.

Choice of granularity: when several packed turns belong to one short episode and the rest of it fits,
the whole episode replaces them (a coherent exchange reads better than its scattered lines and the
turns between usually matter: Kang et al., SeCom, 2025).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

from memsvc.models import Hit
from memsvc.tokens import count_tokens

__all__ = ["by_value_per_token", "format_context", "order_key", "pack"]

def order_key(hit: Hit) -> tuple[float, int, str]:
    """Chronological order of packed hits: time, then position in the user's history, then id."""
    return (hit.start_time.timestamp(), hit.seq if hit.seq is not None else 0, hit.id)


def _group(hit: Hit) -> tuple[str, str]:
    return (hit.session_id or "", hit.stream_id or "")


def _header(hit: Hit) -> str:
    t = hit.start_time
    return f"[{t.day} {t:%B %Y}]"


def _opens_group(prev: Hit | None, hit: Hit) -> bool:
    if prev is None or _group(prev) != _group(hit):
        return True
    return prev.end_time.date() != hit.start_time.date()


def format_context(hits: Sequence[Hit], separator: str = "\n") -> str:
    """The prompt text for packed hits, in the given order (``search`` returns them chronologically)."""
    lines: list[str] = []
    prev: Hit | None = None
    for h in hits:
        if _opens_group(prev, h):
            lines.append(_header(h))
        lines.append(h.text)
        prev = h
    return separator.join(lines)


class _Layout:
    """Packed hits in chronological order with the exact token total of their formatted lines
    (headers included), updated incrementally as hits come and go."""

    def __init__(self, sep_cost: int) -> None:
        self.sep = sep_cost
        self.keys: list[tuple[float, int, str]] = []
        self.hits: list[Hit] = []
        self.total = 0
        self._hdr: dict[str, int] = {}

    def _hcost(self, h: Hit) -> int:
        text = _header(h)
        if text not in self._hdr:
            self._hdr[text] = count_tokens(text)
        return self._hdr[text] + self.sep

    def _link(self, a: Hit | None, b: Hit | None) -> int:
        """Cost of the header in front of ``b`` when it follows ``a``."""
        if b is None:
            return 0
        return self._hcost(b) if _opens_group(a, b) else 0

    def delta(self, h: Hit) -> int:
        i = bisect.bisect(self.keys, order_key(h))
        prev = self.hits[i - 1] if i > 0 else None
        nxt = self.hits[i] if i < len(self.hits) else None
        own = h.tokens + (self.sep if self.hits else 0)
        return own + self._link(prev, h) + self._link(h, nxt) - self._link(prev, nxt)

    def insert(self, h: Hit) -> None:
        self.total += self.delta(h)
        i = bisect.bisect(self.keys, order_key(h))
        self.keys.insert(i, order_key(h))
        self.hits.insert(i, h)

    def remove(self, h: Hit) -> None:
        i = self.hits.index(h)
        self.keys.pop(i)
        self.hits.pop(i)
        self.total -= self.delta(h)


def pack(
    hits: Sequence[Hit],
    budget_tokens: int,
    separator: str = "\n",
    limit: int | None = None,
    episodes: Mapping[str, Hit] | None = None,
    episode_of: Mapping[str, str] | None = None,
    episode_fill: float = 0.5,
    cost_exponent: float = 0.0,
    cost_floor: int = 128,
) -> list[Hit]:
    """Hits that fit ``budget_tokens`` once formatted, chronological. Greedy by rank: a hit whose
    sources are already packed is skipped; one that does not fit is skipped (a smaller later one may).
    With ``cost_exponent`` > 0 the greedy order is by value per token instead: a hit longer than
    ``cost_floor`` tokens competes with ``score * (cost_floor / tokens) ** cost_exponent`` (a 400-token
    answer must score well above the short turns it would crowd out; hits up to ``cost_floor`` tokens
    keep their order), except the turns of the party the question is about (a ``role`` part: the
    user's own words for "where did I ...", the assistant's answer for "what did you recommend").
    Then an episode holding at least ``episode_fill`` of its turns among the packed ones replaces them
    when it fits. The real token count of the final text is checked; lowest-ranked hits go first if
    the estimate was short."""
    sep_cost = count_tokens(separator) if separator else 0
    rank: dict[str, int] = {}
    layout = _Layout(sep_cost)
    covered: set[str] = set()
    if cost_exponent > 0:
        hits = by_value_per_token(hits, cost_exponent, cost_floor)
    for h in hits:
        if limit is not None and len(layout.hits) >= limit:
            break
        srcs = set(h.source_ids)
        if srcs and srcs <= covered:
            continue
        h.tokens = count_tokens(h.text)
        inside = [c for c in layout.hits if c.source_ids and set(c.source_ids) <= srcs]
        for c in inside:
            layout.remove(c)
        if layout.total + layout.delta(h) <= budget_tokens:
            layout.insert(h)
            covered |= srcs
            rank.setdefault(h.id, len(rank))
        else:
            for c in inside:
                layout.insert(c)
        if budget_tokens - layout.total < 2:  # nothing fits in one token plus a separator
            break
    if episodes and episode_of and episode_fill <= 1.0:
        _fill_episodes(layout, rank, budget_tokens, episodes, episode_of, episode_fill, limit)
    chosen = list(layout.hits)
    while chosen and count_tokens(format_context(chosen, separator)) > budget_tokens:
        worst = max(chosen, key=lambda c: rank.get(c.id, -1))
        chosen.remove(worst)
    return chosen


def by_value_per_token(hits: Sequence[Hit], exponent: float, floor: int = 128) -> list[Hit]:
    """``hits`` in packing order: by ``score * (floor / max(tokens, floor)) ** exponent``, best first
    (stable: equal values keep their rank order); hits with a ``role`` part keep their score. Sets each
    hit's ``tokens``."""
    def value(h: Hit) -> float:
        h.tokens = count_tokens(h.text)
        if h.components.get("role", 0.0) > 0:  # a turn of the party the question is about: its own words
            return h.score
        return h.score * (floor / max(h.tokens, floor)) ** exponent

    vals = [value(h) for h in hits]
    order = sorted(range(len(hits)), key=lambda i: -vals[i])
    return [hits[i] for i in order]


def _fill_episodes(
    layout: _Layout, rank: dict[str, int], budget: int, episodes: Mapping[str, Hit],
    episode_of: Mapping[str, str], fill: float, limit: int | None,
) -> None:
    by_ep: dict[str, list[Hit]] = {}
    for h in layout.hits:
        e = episode_of.get(h.id)
        if e is not None and e in episodes:
            by_ep.setdefault(e, []).append(h)
    for eid, members in sorted(by_ep.items(), key=lambda kv: (min(rank.get(m.id, 0) for m in kv[1]), kv[0])):
        ep = episodes[eid]
        n = max(1, len(ep.source_ids))
        if len(members) < 2 or len(members) < fill * n:
            continue
        if limit is not None and len(layout.hits) - len(members) + 1 > limit:
            continue
        ep.tokens = count_tokens(ep.text)
        srcs = set(ep.source_ids)
        inside = [c for c in layout.hits if c.source_ids and set(c.source_ids) <= srcs]
        for c in inside:
            layout.remove(c)
        if layout.total + layout.delta(ep) <= budget:
            ep.score = max(m.score for m in members)
            ep.components = {**members[0].components, "episode_fill": float(len(members))}
            layout.insert(ep)
            rank[ep.id] = min(rank.get(m.id, 0) for m in members)
        else:
            for c in inside:
                layout.insert(c)
