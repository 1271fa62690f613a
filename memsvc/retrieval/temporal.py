"""Time expressions: find them in text, resolve them against a reference time, score units by them.

Two uses, one grammar:

* ingest: ``annotate(text, said_at)`` resolves relative expressions a speaker used ("I went
  yesterday", said on 8 May 2023) and writes the absolute date next to them ("yesterday
  [2023-05-07]"), so the stored memory carries the date it means;
* search: ``parse_query(query, query_time)`` turns "last week", "in May 2023", "two months ago",
  "before June 2023" or "at minute 12 of the video" into a ``TimeConstraint`` that the ranker
  combines with the semantic score, MRAG style (Siyue Zhang et al., "MRAG: A Modular Retrieval
  Framework for Time-Sensitive Question Answering", 2024: split the question into its main content
  and a temporal constraint; score evidence on both).

Fixed-offset expressions (yesterday, N weeks ago, last Saturday, this month) are computed here, so
their ranges are exact; absolute dates and anything else date-like go to ``dateparser``, which also
tells the granularity (day, month, year) the range is built from.
"""

from __future__ import annotations

import calendar
import math
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = [
    "TimeConstraint",
    "TimeSpan",
    "annotate",
    "find_spans",
    "parse_query",
    "temporal_score",
]

Granularity = Literal["day", "week", "weekend", "month", "season", "year", "range"]

_WORD_NUM = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "couple of": 2,
    "a couple": 2, "a few": 3, "few": 3, "several": 3,
}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9
_WEEKDAYS = {d.lower(): i for i, d in enumerate(calendar.day_name)}
_SEASONS = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}

_NUM = r"(?P<num>\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|(?:a\s+)?couple(?:\s+of)?|(?:a\s+)?few|several)"
_UNIT = r"(?P<unit>day|week|weekend|month|year)s?"
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_WD = r"(?P<wd>monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_YEAR = r"(?:19|20)\d\d"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"

# Order matters: earlier, longer patterns win where spans overlap.
_PATTERNS: list[tuple[str, str]] = [
    ("iso", rf"\b(?P<y>{_YEAR})-(?P<m>\d\d)-(?P<d>\d\d)\b"),
    ("day_before_yesterday", r"\b(?:the\s+)?day\s+before\s+yesterday\b"),
    ("day_after_tomorrow", r"\b(?:the\s+)?day\s+after\s+tomorrow\b"),
    ("past_n", rf"\b(?:in|over|during|within|for)\s+the\s+(?:last|past|previous)\s+(?:{_NUM}\s+)?{_UNIT}\b"),
    ("ago", rf"\b{_NUM}\s+{_UNIT}\s+(?:ago|back|earlier)\b"),
    ("week_before_last", r"\bthe\s+(?P<unit>week|month|year|weekend)\s+before\s+last\b"),
    ("rel_unit", rf"\b(?P<rel>last|past|previous|this\s+past|this|next|coming|the\s+following)\s+{_UNIT}\b"),
    ("rel_season", r"\b(?P<rel>last|this\s+past|this|next)\s+(?P<season>spring|summer|fall|autumn|winter)\b"),
    ("rel_weekday", rf"\b(?P<rel>last|this\s+past|this|next|on|this\s+coming)\s+{_WD}\b"),
    ("yesterday", r"\byesterday\b"),
    ("tomorrow", r"\btomorrow\b"),
    ("today", r"\b(?:today|tonight|this\s+(?:morning|afternoon|evening)|last\s+night)\b"),
    ("date_mdy", rf"\b(?:(?P<part>early|mid|late)[\s-]+)?{_MONTH}\.?\s+{_DAY}(?:,?\s+{_YEAR})?\b"),
    ("date_dmy", rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}\.?(?:,?\s+{_YEAR})?\b"),
    ("month_year", rf"\b(?:(?P<part>early|mid|late)[\s-]+)?{_MONTH}\.?,?\s+{_YEAR}\b"),
    ("month", rf"\b(?:(?:in|during|since|before|after|until|by|of|early|mid|late)[\s-]+)(?:(?P<part>early|mid|late)[\s-]+)?{_MONTH}\b"),
    ("year", rf"\b(?:(?:in|during|since|before|after|until|by|of)\s+)(?P<y>{_YEAR})\b"),
]
_COMPILED = [(name, re.compile(p, re.IGNORECASE)) for name, p in _PATTERNS]
_RELATIVE = {"day_before_yesterday", "day_after_tomorrow", "past_n", "ago", "week_before_last", "rel_unit",
             "rel_season", "rel_weekday", "yesterday", "tomorrow", "today"}
_BEFORE = re.compile(r"\b(?:before|until|till|prior\s+to|earlier\s+than|by)\s+(?:the\s+)?$", re.IGNORECASE)
_AFTER = re.compile(r"\b(?:after|later\s+than)\s+(?:the\s+)?$", re.IGNORECASE)
_RECENCY = re.compile(
    r"\b(?:current(?:ly)?|now|latest|most\s+recent(?:ly)?|recently|these\s+days|nowadays|still|anymore|"
    r"at\s+the\s+moment|right\s+now|lately|newest|last\s+time)\b",
    re.IGNORECASE,
)
_VIDEO = re.compile(
    r"\b(?:at|around|near|from|after|before|by)?\s*(?:"
    r"(?:minute|min)\s+(?P<min>\d+(?:\.\d+)?)|"
    r"(?:second|sec)\s+(?P<sec>\d+(?:\.\d+)?)|"
    r"(?P<mm>\d+(?:\.\d+)?)\s+(?:minutes?|mins?)\s+(?:in|into)|"
    r"(?P<clock>\d{1,2}:\d{2}(?::\d{2})?)"
    r")(?=[^.?!]*\b(?:video|stream|clip|recording|footage|movie|film)\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class TimeSpan:
    """A resolved time expression: ``[start, end)`` in UTC, with the words it came from."""

    start: datetime
    end: datetime
    text: str
    granularity: Granularity
    relative: bool
    """True when the expression only means something against a reference time ("yesterday")."""
    pos: tuple[int, int] = (0, 0)
    """Character offsets of the expression in the parsed text."""
    approx: bool = False
    """A fuzzy range around one day ("two weeks ago"); its label is the middle day."""

    def label(self) -> str:
        """Compact absolute form written next to a relative expression ("2023-05-07", "May 2023")."""
        s = self.start
        if self.approx:
            return f"~{s + (self.end - s) / 2:%Y-%m-%d}"
        if self.granularity == "day":
            return f"{s:%Y-%m-%d}"
        if self.granularity in ("week", "weekend"):
            return f"{self.granularity} of {s:%Y-%m-%d}"
        if self.granularity == "month":
            return f"{s:%B %Y}"
        if self.granularity == "year":
            return f"{s:%Y}"
        last = self.end - timedelta(seconds=1)
        return f"{s:%Y-%m-%d}..{last:%Y-%m-%d}"


@dataclass(frozen=True, slots=True)
class TimeConstraint:
    """What a query says about time. ``spans`` are alternatives (any may hold)."""

    spans: tuple[TimeSpan, ...] = ()
    relation: Literal["in", "before", "after"] = "in"
    recency: bool = False
    """The query asks for the current/latest state ("what is my current ...")."""
    video_offset: float | None = None
    """Seconds from the start of a stream ("at minute 12 of the video")."""
    residual: str = ""
    """The query without its time expressions: the main content, for semantic scoring."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether it constrains anything."""
        return bool(self.spans) or self.recency or self.video_offset is not None

    def window(self) -> tuple[datetime | None, datetime | None]:
        """Smallest ``[from, to)`` covering every span under the relation (None = open)."""
        if not self.spans:
            return None, None
        lo = min(s.start for s in self.spans)
        hi = max(s.end for s in self.spans)
        if self.relation == "before":
            return None, lo
        if self.relation == "after":
            return hi, None
        return lo, hi


# -- calendar arithmetic ---------------------------------------------------------------------------
def _day(ts: datetime) -> datetime:
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def _add_months(ts: datetime, n: int) -> datetime:
    m = ts.month - 1 + n
    y = ts.year + m // 12
    m = m % 12 + 1
    return ts.replace(year=y, month=m, day=min(ts.day, calendar.monthrange(y, m)[1]))


def _month(y: int, m: int) -> tuple[datetime, datetime]:
    start = datetime(y, m, 1, tzinfo=UTC)
    return start, _add_months(start, 1)


def _unit_range(ref: datetime, unit: str, offset: int) -> tuple[datetime, datetime, Granularity]:
    """The calendar ``unit`` that is ``offset`` units from the one holding ``ref``."""
    d = _day(ref)
    if unit == "day":
        s = d + timedelta(days=offset)
        return s, s + timedelta(days=1), "day"
    if unit == "week":
        s = d - timedelta(days=d.weekday()) + timedelta(weeks=offset)
        return s, s + timedelta(days=7), "week"
    if unit == "weekend":
        # the weekend of the week ``offset`` weeks away; "last weekend" on a Monday is 2 days back
        sat = d - timedelta(days=d.weekday()) + timedelta(days=5, weeks=offset)
        if offset < 0 and d.weekday() >= 5:
            sat = d - timedelta(days=d.weekday() - 5) + timedelta(weeks=offset)
        return sat, sat + timedelta(days=2), "weekend"
    if unit == "month":
        s = _add_months(d.replace(day=1), offset)
        return s, _add_months(s, 1), "month"
    s = d.replace(year=d.year + offset, month=1, day=1)
    return s, s.replace(year=s.year + 1), "year"


def _num(word: str | None) -> int:
    if not word:
        return 1
    w = re.sub(r"\s+", " ", word.lower())
    return int(w) if w.isdigit() else _WORD_NUM.get(w, 1)


def _around(center: datetime, unit: str, n: int) -> tuple[datetime, datetime, Granularity]:
    """A fuzzy range around "n units ago": the day ± 1 for days, ± half a unit otherwise."""
    if unit == "day":
        s = _day(center)
        slack = timedelta(days=1 if n > 2 else 0)
        return s - slack, s + timedelta(days=1) + slack, "range" if slack else "day"
    half = {"week": timedelta(days=4), "weekend": timedelta(days=4), "month": timedelta(days=16),
            "year": timedelta(days=183)}[unit]
    return _day(center) - half, _day(center) + half + timedelta(days=1), "range"


# -- the grammar -----------------------------------------------------------------------------------
_PARSER_LOCK = threading.Lock()
_PARSER: Any = None


def _dateparser(ref: datetime) -> Any:
    global _PARSER
    with _PARSER_LOCK:
        if _PARSER is None:
            try:
                from dateparser.date import DateDataParser
            except ImportError as exc:  # pragma: no cover - a core dependency
                from memsvc.exceptions import MissingDependencyError

                raise MissingDependencyError("pip install dateparser") from exc
            _PARSER = DateDataParser
    return _PARSER(
        languages=["en"],
        settings={"RELATIVE_BASE": ref.astimezone(UTC).replace(tzinfo=None), "PREFER_DATES_FROM": "past",
                  "RETURN_TIME_AS_PERIOD": True, "PREFER_DAY_OF_MONTH": "first"},
    )


def _via_dateparser(text: str, ref: datetime, year_given: bool) -> tuple[datetime, datetime, Granularity] | None:
    cleaned = re.sub(r"\b(?:in|during|since|before|after|until|by|of|early|mid|late)[\s-]+", " ", text,
                     flags=re.IGNORECASE).strip(" ,.")
    data = _dateparser(ref).get_date_data(cleaned)
    if data is None or data.date_obj is None:
        return None
    d = data.date_obj.replace(tzinfo=UTC)
    period = data.period or "day"
    if period == "year":
        s = datetime(d.year, 1, 1, tzinfo=UTC)
        return s, s.replace(year=d.year + 1), "year"
    if period == "month":
        s, e = _month(d.year, d.month)
        if not year_given and s > ref:  # "in May" said in April means last May
            s, e = _month(d.year - 1, d.month)
        return s, e, "month"
    s = _day(d)
    if not year_given and s > ref + timedelta(days=1):
        s = s.replace(year=s.year - 1)
    return s, s + timedelta(days=1), "day"


def _part(start: datetime, end: datetime, part: str | None) -> tuple[datetime, datetime]:
    """Early/mid/late thirds of a range (a little overlap: people are vague)."""
    if not part:
        return start, end
    span = end - start
    third = span / 3
    i = {"early": 0, "mid": 1, "late": 2}[part.lower()]
    return start + third * i - span / 12, start + third * (i + 1) + span / 12


def _resolve(name: str, m: re.Match[str], ref: datetime) -> tuple[datetime, datetime, Granularity] | None:
    g = m.groupdict()
    if name == "iso":
        try:
            s = datetime(int(g["y"]), int(g["m"]), int(g["d"]), tzinfo=UTC)
        except ValueError:
            return None
        return s, s + timedelta(days=1), "day"
    if name == "day_before_yesterday":
        return _unit_range(ref, "day", -2)
    if name == "day_after_tomorrow":
        return _unit_range(ref, "day", 2)
    if name == "yesterday":
        return _unit_range(ref, "day", -1)
    if name == "tomorrow":
        return _unit_range(ref, "day", 1)
    if name == "today":
        return _unit_range(ref, "day", 0)
    if name == "past_n":
        n, unit = _num(g.get("num")), g["unit"].lower()
        step = {"day": timedelta(days=1), "week": timedelta(weeks=1), "weekend": timedelta(weeks=1)}
        start = ref - step[unit] * n if unit in step else _add_months(ref, -n * (12 if unit == "year" else 1))
        return _day(start), _day(ref) + timedelta(days=1), "range"
    if name == "ago":
        n, unit = _num(g.get("num")), g["unit"].lower()
        if unit in ("day", "week", "weekend"):
            center = ref - timedelta(days=n * (1 if unit == "day" else 7))
        else:
            center = _add_months(ref, -n * (12 if unit == "year" else 1))
        return _around(center, unit, n)
    if name == "week_before_last":
        return _unit_range(ref, g["unit"].lower(), -2)
    if name == "rel_unit":
        rel = re.sub(r"\s+", " ", g["rel"].lower())
        off = {"last": -1, "past": -1, "previous": -1, "this past": -1, "this": 0, "next": 1, "coming": 1,
               "the following": 1}[rel]
        return _unit_range(ref, g["unit"].lower(), off)
    if name == "rel_season":
        rel = re.sub(r"\s+", " ", g["rel"].lower())
        m0 = _SEASONS[g["season"].lower()]
        start = datetime(ref.year, m0, 1, tzinfo=UTC)
        if rel in ("last", "this past"):
            while start + timedelta(days=90) > ref:
                start = start.replace(year=start.year - 1)
        elif rel == "next":
            while start <= ref:
                start = start.replace(year=start.year + 1)
        return start, _add_months(start, 3), "season"
    if name == "rel_weekday":
        rel = re.sub(r"\s+", " ", g["rel"].lower())
        wd = _WEEKDAYS[g["wd"].lower()]
        d = _day(ref)
        if rel in ("next", "this coming"):
            delta = (wd - d.weekday()) % 7 or 7
        elif rel == "this":
            delta = wd - d.weekday()
        else:  # last / this past / on: the most recent such day before today
            delta = -((d.weekday() - wd) % 7 or 7)
        s = d + timedelta(days=delta)
        return s, s + timedelta(days=1), "day"
    year_given = bool(re.search(_YEAR, m.group(0)))
    if name == "year":
        y = int(g["y"])
        s = datetime(y, 1, 1, tzinfo=UTC)
        return s, s.replace(year=y + 1), "year"
    got = _via_dateparser(m.group(0), ref, year_given)
    if got is None:
        return None
    if not g.get("part"):
        return got
    s, e = _part(got[0], got[1], g["part"])
    return s, e, "range"


def find_spans(text: str, ref: datetime) -> list[TimeSpan]:
    """Every time expression in ``text`` resolved against ``ref`` (aware), left to right, no overlaps."""
    ref = ref.astimezone(UTC)
    taken: list[tuple[int, int]] = []
    out: list[TimeSpan] = []
    for name, rx in _COMPILED:
        for m in rx.finditer(text):
            a, b = m.span()
            if any(a < y and x < b for x, y in taken):
                continue
            try:
                got = _resolve(name, m, ref)
            except (ValueError, OverflowError):  # "6,000 years ago": outside the calendar datetime holds
                got = None
            if got is None:
                continue
            taken.append((a, b))
            out.append(TimeSpan(got[0], got[1], m.group(0), got[2], name in _RELATIVE, (a, b), name == "ago"))
    out.sort(key=lambda s: s.pos)
    return out


def annotate(text: str, said_at: datetime) -> tuple[str, list[TimeSpan]]:
    """Write the absolute date after every relative expression: ``"yesterday [2023-05-07]"``.

    Returns the new text and the resolved relative spans (absolute dates in the text stay as they
    are: they already carry their meaning)."""
    spans = [s for s in find_spans(text, said_at) if s.relative]
    if not spans:
        return text, []
    parts: list[str] = []
    last = 0
    for s in spans:
        parts.append(text[last : s.pos[1]])
        parts.append(f" [{s.label()}]")
        last = s.pos[1]
    parts.append(text[last:])
    return "".join(parts), spans


def _video_offset(query: str) -> tuple[float | None, tuple[int, int] | None]:
    m = _VIDEO.search(query)
    if not m:
        return None, None
    g = m.groupdict()
    if g["min"] or g["mm"]:
        return float(g["min"] or g["mm"]) * 60.0, m.span()
    if g["sec"]:
        return float(g["sec"]), m.span()
    parts = [float(x) for x in g["clock"].split(":")]
    secs = parts[0] * 60 + parts[1] if len(parts) == 2 else parts[0] * 3600 + parts[1] * 60 + parts[2]
    return secs, m.span()


def parse_query(query: str, query_time: datetime) -> TimeConstraint:
    """The temporal constraint of a query, resolved against ``query_time`` (aware)."""
    offset, vspan = _video_offset(query)
    spans = [s for s in find_spans(query, query_time) if vspan is None or not (s.pos[0] < vspan[1] and vspan[0] < s.pos[1])]
    relation: Literal["in", "before", "after"] = "in"
    if spans:
        head = query[: spans[0].pos[0]]
        first = spans[0].text.split()[0].lower()
        if _BEFORE.search(head) or first in ("before", "until", "by"):
            relation = "before"
        elif re.search(r"\bsince\s+(?:the\s+)?$", head, re.IGNORECASE) or first == "since":
            # "since X": from the start of X until the query time
            s0 = spans[0]
            spans[0] = TimeSpan(s0.start, max(s0.end, query_time.astimezone(UTC)), s0.text, "range", s0.relative,
                                s0.pos, s0.approx)
        elif _AFTER.search(head) or first == "after":
            relation = "after"
    cut = sorted([s.pos for s in spans] + ([vspan] if vspan else []))
    residual, last = [], 0
    for a, b in cut:
        residual.append(query[last:a])
        last = b
    residual.append(query[last:])
    rest = re.sub(r"\s+", " ", "".join(residual)).strip()
    return TimeConstraint(
        spans=tuple(spans), relation=relation, recency=bool(_RECENCY.search(query)), video_offset=offset,
        residual=rest or query,
    )


_TAU = {"day": 2.0, "week": 4.0, "weekend": 3.0, "month": 10.0, "season": 20.0, "year": 60.0, "range": 7.0}


def temporal_score(constraint: TimeConstraint, times: list[tuple[datetime, datetime]]) -> float:
    """How well a unit's times (its own time and the dates it mentions) meet the constraint: 1 inside,
    decaying exponentially with the distance in days outside (scale set by the span's granularity)."""
    if not constraint.spans or not times:
        return 0.0
    best = 0.0
    for span in constraint.spans:
        tau = _TAU[span.granularity]
        for start, end in times:
            if constraint.relation == "before":
                gap = (end - span.start).total_seconds() / 86400.0 if end > span.start else 0.0
            elif constraint.relation == "after":
                gap = (span.end - start).total_seconds() / 86400.0 if start < span.end else 0.0
            else:
                if end <= span.start:
                    gap = (span.start - end).total_seconds() / 86400.0
                elif start >= span.end:
                    gap = (start - span.end).total_seconds() / 86400.0
                else:
                    gap = 0.0
            best = max(best, math.exp(-max(gap, 0.0) / tau))
    return best
