"""Budget packing: choose hits, in rank order, whose formatted text fits a token budget.

``Memory.context`` is exactly ``format_context(pack(...))``; ``Memory.search(budget_tokens=B)`` returns
the same hits in the same order, so what a caller sees in search is what its prompt gets.
"""

from __future__ import annotations

from collections.abc import Sequence

from memsvc.models import Hit
from memsvc.tokens import count_tokens

__all__ = ["format_context", "format_hit", "pack"]


def format_hit(hit: Hit) -> str:
    """One packed unit: ``[2023-05-08 13:56] Caroline: ...``."""
    return f"[{hit.start_time:%Y-%m-%d %H:%M}] {hit.text}"


def format_context(hits: Sequence[Hit], separator: str = "\n") -> str:
    """The prompt text for packed hits."""
    return separator.join(format_hit(h) for h in hits)


def pack(hits: Sequence[Hit], budget_tokens: int, separator: str = "\n", limit: int | None = None) -> list[Hit]:
    """Greedy packing by rank: skip a hit whose sources are all already packed, replace packed hits
    whose sources a new hit covers, and skip hits that do not fit (a smaller later one may)."""
    sep_cost = count_tokens(separator) if separator else 0

    def total(items: Sequence[Hit]) -> int:
        return sum(c.tokens for c in items) + sep_cost * max(0, len(items) - 1)

    chosen: list[Hit] = []
    for h in hits:
        if limit is not None and len(chosen) >= limit:
            break
        srcs = set(h.source_ids)
        covered = {s for c in chosen for s in c.source_ids}
        if srcs and srcs <= covered:
            continue
        h.tokens = count_tokens(format_hit(h))
        trial = [c for c in chosen if not set(c.source_ids) <= srcs] + [h]
        if total(trial) <= budget_tokens:
            chosen = trial
    # BPE may merge across a separator: verify the real count and drop from the tail if needed.
    while chosen and count_tokens(format_context(chosen, separator)) > budget_tokens:
        chosen.pop()
    return chosen
