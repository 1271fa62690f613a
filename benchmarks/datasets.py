"""Benchmark data sets: loading LoCoMo and LongMemEval files and ingesting them through the SDK.

Used by ``memsvc import`` and ``memsvc bench``. Ingest is identical in both, and identical to the
independent scorers: LoCoMo turns read ``text`` plus `` [shares a photo: <blip_caption>]`` for image
turns, one ``Memory.add`` per session with the session date as timestamp and the speaker as ``name``;
LongMemEval turns keep ``role`` and ``content`` (blank turns dropped), one ``add`` per haystack session
with its date.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "LoCoMoConversation",
    "LoCoMoQA",
    "LongMemEvalIngest",
    "LongMemEvalQuestion",
    "ingest_locomo",
    "ingest_longmemeval",
    "iter_steps",
    "load_json",
    "load_locomo",
    "load_longmemeval",
    "parse_locomo_date",
    "parse_longmemeval_date",
]

_EVIDENCE = re.compile(r"D\d+:\d+")
Progress = Callable[[int], None]
"""Called with the number of turns just stored (drives a progress bar)."""


def load_json(path: str | Path) -> Any:
    """A JSON file, gzip-compressed when its name ends in ``.gz``."""
    p = Path(path)
    with gzip.open(p, "rt", encoding="utf-8") if p.suffix == ".gz" else p.open(encoding="utf-8") as f:
        return json.load(f)


# -- LoCoMo ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoCoMoQA:
    """A question of categories 1-4 with its evidence dia ids (``"D1:3"``)."""

    question: str
    evidence: frozenset[str]
    category: int


@dataclass(frozen=True)
class LoCoMoConversation:
    """One LoCoMo conversation: sessions of ``(dia_id, speaker, text)`` turns and its QAs."""

    sample_id: str
    sessions: list[tuple[str, list[tuple[str, str, str]]]]
    """``(date string, turns)`` per session, in order."""
    qas: list[LoCoMoQA] = field(default_factory=list)

    @property
    def n_turns(self) -> int:
        return sum(len(t) for _, t in self.sessions)


def parse_locomo_date(s: str) -> datetime:
    """``"1:56 pm on 8 May, 2023"`` -> aware UTC datetime."""
    return datetime.strptime(s.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def load_locomo(path: str | Path) -> list[LoCoMoConversation]:
    """Conversations with their category 1-4 QAs that have evidence (category 5 is adversarial).

    Sessions are read ``session_1``, ``session_2``, ... up to the first missing one; malformed evidence
    strings (``"D8:6; D9:17"``) are split with the regex ``D\\d+:\\d+``.
    """
    out = []
    for c in load_json(path):
        conv = c["conversation"]
        sessions = []
        n = 1
        while f"session_{n}" in conv:
            turns = []
            for t in conv[f"session_{n}"]:
                text = t["text"]
                if t.get("blip_caption"):
                    text += f" [shares a photo: {t['blip_caption']}]"
                turns.append((t["dia_id"], t["speaker"], text))
            sessions.append((conv.get(f"session_{n}_date_time", ""), turns))
            n += 1
        qas = []
        for q in c["qa"]:
            if q.get("category") == 5:
                continue
            ev: set[str] = set()
            for e in q.get("evidence", []):
                ev.update(_EVIDENCE.findall(e))
            if ev:
                qas.append(LoCoMoQA(q["question"], frozenset(ev), int(q["category"])))
        out.append(LoCoMoConversation(str(c["sample_id"]), sessions, qas))
    return out


def ingest_locomo(
    m: Any,
    conv: LoCoMoConversation,
    user_id: str,
    progress: Progress | None = None,
) -> tuple[dict[str, str], dict[str, str], list[float]]:
    """Add a conversation, one ``Memory.add`` per session.

    Returns ``(key_of, text_of, add_seconds)``: event id -> dia id, dia id -> ``"Speaker: text"``
    (what the coverage rule reads), and the wall time of each ``add`` call.
    """
    import time

    key_of: dict[str, str] = {}
    text_of: dict[str, str] = {}
    took: list[float] = []
    for si, (date, turns) in enumerate(conv.sessions):
        msgs = [{"role": "user", "content": text, "name": spk} for _, spk, text in turns]
        t0 = time.perf_counter()
        ids = m.add(
            messages=msgs,
            user_id=user_id,
            session_id=f"{conv.sample_id}-s{si + 1}",
            timestamp=parse_locomo_date(date),
        )
        took.append(time.perf_counter() - t0)
        if len(ids) != len(turns):
            raise RuntimeError(f"add returned {len(ids)} ids for {len(turns)} messages")
        for (dia, spk, text), eid in zip(turns, ids, strict=True):
            key_of[str(eid)] = dia
            text_of[dia] = f"{spk}: {text}"
        if progress:
            progress(len(turns))
    return key_of, text_of, took


# -- LongMemEval -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LongMemEvalQuestion:
    """One LongMemEval question with its own haystack."""

    question_id: str
    question_type: str
    question: str
    question_date: str
    sessions: list[tuple[str, str, list[dict[str, Any]]]]
    """``(haystack session id, date string, turns)`` per haystack session."""
    answer_session_ids: frozenset[str]

    @property
    def abstention(self) -> bool:
        return self.question_id.endswith("_abs")

    @property
    def n_turns(self) -> int:
        return sum(1 for _, _, s in self.sessions for t in s if t["content"].strip())


def parse_longmemeval_date(d: str) -> datetime:
    """``"2023/05/28 (Sun) 19:47"`` -> aware UTC datetime."""
    return datetime.strptime(d.split(" (")[0] + " " + d.split(") ")[1], "%Y/%m/%d %H:%M").replace(tzinfo=UTC)


def load_longmemeval(path: str | Path) -> list[LongMemEvalQuestion]:
    """All questions of a LongMemEval file (``.json`` or ``.json.gz``), in file order."""
    return [
        LongMemEvalQuestion(
            question_id=str(q["question_id"]),
            question_type=str(q.get("question_type", "")),
            question=q["question"],
            question_date=q["question_date"],
            sessions=list(
                zip(q["haystack_session_ids"], q["haystack_dates"], q["haystack_sessions"], strict=True)
            ),
            answer_session_ids=frozenset(q.get("answer_session_ids", [])),
        )
        for q in load_json(path)
    ]


@dataclass
class LongMemEvalIngest:
    """What ingesting one haystack produced (keys are ``"<session index>:<turn index>"``)."""

    key_of: dict[str, str] = field(default_factory=dict)
    text_of: dict[str, str] = field(default_factory=dict)
    gold: set[str] = field(default_factory=set)
    """Keys of ``has_answer`` turns."""
    session_of: dict[str, str] = field(default_factory=dict)
    """Key -> haystack session id."""
    add_seconds: list[float] = field(default_factory=list)


def ingest_longmemeval(
    m: Any,
    q: LongMemEvalQuestion,
    user_id: str,
    progress: Progress | None = None,
    session_prefix: str = "s",
) -> LongMemEvalIngest:
    """Add one question's haystack as ``user_id``, one ``Memory.add`` per session (blank turns dropped).

    Session ids are ``<session_prefix><index>``: the haystack's own session ids are never stored (the
    answer sessions' ids give the answer away).
    """
    import time

    out = LongMemEvalIngest()
    for si, (sid, date, sess) in enumerate(q.sessions):
        keep = [t for t in sess if t["content"].strip()]
        if not keep:
            continue
        msgs = [{"role": t["role"], "content": t["content"]} for t in keep]
        t0 = time.perf_counter()
        ids = m.add(
            messages=msgs,
            user_id=user_id,
            session_id=f"{session_prefix}{si}",
            timestamp=parse_longmemeval_date(date),
        )
        out.add_seconds.append(time.perf_counter() - t0)
        for j, (t, eid) in enumerate(zip(keep, ids, strict=True)):
            key = f"{si}:{j}"
            out.key_of[str(eid)] = key
            out.text_of[key] = t["content"]
            out.session_of[key] = sid
            if t.get("has_answer"):
                out.gold.add(key)
        if progress:
            progress(len(keep))
    return out


def iter_steps(items: list[Any], step: int = 1, limit: int | None = None) -> Iterator[Any]:
    """Every ``step``-th item from the first, at most ``limit`` of them."""
    sel = items[::step]
    yield from sel[:limit] if limit is not None else sel
