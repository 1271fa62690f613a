"""Update / supersede: a newer statement about the same subject and attribute ends an older one.

Statements are read from chat turns with a few conservative patterns (no model, offline): "I moved to
Lisbon", "I live in X", "my job is Y", "I work as a Y", "I work at Z", "I'm married", "I'm 34 years
old", "my favorite color is green". The subject is the speaker. For each (subject, attribute) the
statements are ordered by time; a statement's validity ends (``valid_to``) at the first later
statement with a different value, so repeating a fact never retires it and a fact about another
attribute never touches it. A turn's ``valid_to`` is set only when all its statements have ended;
nothing is deleted, and search ranks such a turn below what is true now (``superseded_weight``).
The whole validity of a key is recomputed each run, so a deleted newer statement restores the older.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from memsvc.consolidation._common import store
from memsvc.stores import Scope
from memsvc.stores.sql_schema import UnitFactRow

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["Fact", "extract_facts", "supersede"]

_END = r"(?=\s*(?:[.,;!?)]|\bat\b|\bin\b|\band\b|\bbut\b|\bnow\b|\bsince\b|\bfor\b|\bwith\b|$))"
_PLACE = r"((?:[A-Z][\w'\-]*)(?:\s+(?:[A-Z][\w'\-]*|de|del|of|upon|on))*)"
_THING = r"([\w'\- ]{2,60}?)"
_ART = r"(?:an?\s+|the\s+)?"
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("residence", re.compile(r"\bI(?:'ve| have)?\s+(?:just\s+|recently\s+|finally\s+)?moved\s+(?:back\s+)?to\s+" + _PLACE)),
    ("residence", re.compile(r"\bI\s+(?:now\s+|currently\s+|still\s+)?live\s+in\s+" + _PLACE)),
    ("residence", re.compile(r"\bI(?:'m| am)\s+(?:now\s+|currently\s+)?living\s+in\s+" + _PLACE)),
    ("job", re.compile(r"\b[Mm]y\s+(?:new\s+|current\s+)?job\s+is\s+(?:as\s+)?" + _ART + _THING + _END)),
    ("job", re.compile(r"\bI\s+(?:now\s+|currently\s+)?work\s+as\s+" + _ART + _THING + _END)),
    ("job", re.compile(r"\bI(?:'m| am)\s+(?:now\s+)?working\s+as\s+" + _ART + _THING + _END)),
    ("job", re.compile(r"\bI(?:'ve| have)?\s+(?:just\s+)?(?:started|got|landed|took)\s+(?:a\s+|my\s+)?(?:new\s+)?job\s+as\s+" + _ART + _THING + _END)),
    ("employer", re.compile(r"\bI\s+(?:now\s+|currently\s+)?work\s+(?:at|for)\s+" + _PLACE)),
    ("marital status", re.compile(r"\bI(?:'m| am)\s+(?:now\s+)?(married|single|engaged|divorced|widowed)\b")),
    ("marital status", re.compile(r"\bI\s+(?:just\s+)?got\s+(married|engaged|divorced)\b")),
    ("age", re.compile(r"\bI(?:'m| am)\s+(\d{1,3})\s+years?\s+old\b")),
    ("age", re.compile(r"\bI\s+(?:just\s+)?turned\s+(\d{1,3})\b")),
    ("favorite", re.compile(r"\b[Mm]y\s+(?:new\s+)?fav(?:ou?rite)\s+(\w+(?:\s+\w+)?)\s+is\s+(?:now\s+)?" + _THING + _END)),
]


@dataclass(frozen=True, slots=True)
class Fact:
    """``subject attribute = value`` (value lower-cased, articles dropped)."""

    subject: str
    attribute: str
    value: str


def _norm(value: str) -> str:
    v = re.sub(r"\s+", " ", value.strip().lower())
    v = re.sub(r"^(?:a|an|the|my)\s+", "", v)
    return " ".join(v.split()[:6])


def extract_facts(text: str, subject: str) -> list[Fact]:
    """Statements the speaker ``subject`` makes about themself in ``text`` (one per attribute)."""
    out: dict[str, Fact] = {}
    for attr, pat in PATTERNS:
        for m in pat.finditer(text):
            if attr == "favorite":
                key, value = f"favorite {_norm(m.group(1))}", _norm(m.group(2))
            else:
                key, value = attr, _norm(m.group(1))
            if value and key not in out:
                out[key] = Fact(subject, key, value)
    return list(out.values())


def supersede(svc: MemoryService, scope: Scope, batch: int = 5_000) -> dict[str, int]:
    """Read statements from turns not scanned yet, then recompute validity of the touched keys."""
    st = store(svc)
    mark_s, _ = st.get_state(scope.tenant, scope.user, "facts")
    mark = int(mark_s or 0)
    if mark > st.max_seq(scope):  # the user was deleted and wrote again: start over
        mark = 0
    found = 0
    touched: set[tuple[str, str]] = set()
    while rows := st.turns_after(scope, mark, batch):
        facts: list[UnitFactRow] = []
        for uid, seq, name, role, text, ts in rows:
            for f in extract_facts(text, name or role or "user"):
                facts.append(UnitFactRow(unit_id=uid, subject=f.subject, attribute=f.attribute, tenant_id=scope.tenant,
                                         user_id=scope.user, value=f.value, observed_at=ts, seq=seq))
                touched.add((f.subject, f.attribute))
        mark = rows[-1][1]
        with st.session() as s:  # facts and the mark in one transaction: a kill repeats the batch
            for f in facts:
                s.merge(f)
            st.put_state(s, scope.tenant, scope.user, "facts", str(mark))
        found += len(facts)
    ended = _validity(svc, scope, touched) if touched else 0
    return {"facts_found": found, "facts_superseded": ended}


def _validity(svc: MemoryService, scope: Scope, keys: set[tuple[str, str]]) -> int:
    st = store(svc)
    by_key: dict[tuple[str, str], list[UnitFactRow]] = defaultdict(list)
    for f in st.facts(scope, keys):
        by_key[(f.subject, f.attribute)].append(f)
    ends: dict[str, list[tuple[datetime | None, str | None]]] = defaultdict(list)
    for rows in by_key.values():
        rows.sort(key=lambda f: (f.observed_at, f.seq, f.unit_id))
        for i, f in enumerate(rows):
            nxt = next((g for g in rows[i + 1 :] if g.value != f.value and g.observed_at >= f.observed_at), None)
            ends[f.unit_id].append((nxt.observed_at, nxt.unit_id) if nxt else (None, None))
    # every statement of a turn must have ended before the turn does; keep other keys' statements in view
    all_keys = {(f.subject, f.attribute) for f in st.facts(scope) if f.unit_id in ends}
    if all_keys - keys:
        return _validity(svc, scope, keys | all_keys)
    units = svc.sql.units(scope, sorted(ends))
    changes: dict[str, dict[str, object]] = {}
    n = 0
    for uid, es in ends.items():
        u = units.get(uid)
        if u is None:
            continue
        end = None if any(e is None for e, _ in es) else max(e for e, _ in es if e is not None)
        by = None if end is None else next(b for e, b in es if e == end)
        meta = dict(u.meta or {})
        if by is None:
            meta.pop("superseded_by", None)
        else:
            meta["superseded_by"] = by
        if u.valid_to != end or (u.meta or {}) != meta:
            changes[uid] = {"valid_to": end, "meta": meta}
        n += end is not None
    st.update_units(changes)
    return n
