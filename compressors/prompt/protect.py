"""What a compressor must never drop: names, numbers, dates, and the caller's own ``keep`` list."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["WORD", "is_protected", "protected_tokens"]

WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]+|\s+", re.UNICODE)
_MONTHS = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "yesterday", "today", "tomorrow", "tonight", "week", "weekend", "month", "year", "ago", "last", "next",
}
_ALWAYS = {
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "first", "second", "third",
    "not", "no", "never", "n't",
}


def is_protected(token: str, sentence_initial: bool, keep: set[str]) -> bool:
    """Digits, dates/time words, negations, numbers, capitalised words inside a sentence (names), and
    anything in ``keep`` (case-insensitive)."""
    low = token.lower()
    if low in keep or token in keep:
        return True
    if any(ch.isdigit() for ch in token):
        return True
    if low in _MONTHS or low in _ALWAYS or low.endswith("n't"):
        return True
    return token[:1].isupper() and not sentence_initial and token.lower() != "i"


def protected_tokens(text: str, keep: Iterable[str] = ()) -> list[str]:
    """The protected words of ``text`` in order (what the benchmark checks survived)."""
    keep_set = {k.lower() for k in keep}
    out = []
    initial = True
    toks = WORD.findall(text)
    for i, tok in enumerate(toks):
        if tok.isspace():
            continue
        if tok[0].isalnum() or tok[0] == "_":
            speaker = i + 1 < len(toks) and toks[i + 1].startswith(":")
            if speaker or is_protected(tok, initial, keep_set):
                out.append(tok)
            initial = False
        elif tok in {".", "!", "?", ":"} or tok.endswith((".", "!", "?")):
            initial = True
    return out
