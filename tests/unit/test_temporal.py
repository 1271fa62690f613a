"""Time expressions against fixed reference dates: relative, absolute, ranges, video offsets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memsvc.retrieval.temporal import TimeConstraint, annotate, find_spans, parse_query, temporal_score

REF = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)  # a Monday


def d(y: int, m: int, day: int) -> datetime:
    return datetime(y, m, day, tzinfo=UTC)


def one(query: str, ref: datetime = REF) -> tuple[datetime, datetime, str]:
    c = parse_query(query, ref)
    assert len(c.spans) == 1, c.spans
    s = c.spans[0]
    return s.start, s.end, s.granularity


@pytest.mark.parametrize(
    ("query", "start", "end"),
    [
        ("what did I do yesterday?", d(2023, 5, 7), d(2023, 5, 8)),
        ("what did I do today", d(2023, 5, 8), d(2023, 5, 9)),
        ("the day before yesterday", d(2023, 5, 6), d(2023, 5, 7)),
        ("what happened last week?", d(2023, 5, 1), d(2023, 5, 8)),
        ("plans for next week", d(2023, 5, 15), d(2023, 5, 22)),
        ("what did we do last month", d(2023, 4, 1), d(2023, 5, 1)),
        ("this month", d(2023, 5, 1), d(2023, 6, 1)),
        ("last year", d(2022, 1, 1), d(2023, 1, 1)),
        ("what did I buy last Saturday?", d(2023, 5, 6), d(2023, 5, 7)),
        ("on Friday", d(2023, 5, 5), d(2023, 5, 6)),
        ("next Tuesday", d(2023, 5, 9), d(2023, 5, 10)),
        ("last weekend", d(2023, 5, 6), d(2023, 5, 8)),
        ("the week before last", d(2023, 4, 24), d(2023, 5, 1)),
    ],
)
def test_relative_expressions(query: str, start: datetime, end: datetime) -> None:
    s, e, _ = one(query)
    assert (s, e) == (start, end)


def test_n_units_ago_is_a_window_around_the_day() -> None:
    s, e, g = one("I visited a museum two months ago")
    assert g == "range"
    assert s < d(2023, 3, 8) < e
    assert (e - s).days == 33  # ± half a month
    s, e, _ = one("3 days ago")
    assert s <= d(2023, 5, 5) < e and (e - s).days == 3
    s, e, _ = one("a couple of weeks ago")
    assert s < d(2023, 4, 24) < e


def test_in_the_last_n_units_ends_at_the_reference() -> None:
    s, e, _ = one("what did we eat in the last 3 days")
    assert (s, e) == (d(2023, 5, 5), d(2023, 5, 9))
    s, e, _ = one("over the past two weeks")
    assert (s, e) == (d(2023, 4, 24), d(2023, 5, 9))


@pytest.mark.parametrize(
    ("query", "start", "end", "granularity"),
    [
        ("what did Caroline do in May 2023?", d(2023, 5, 1), d(2023, 6, 1), "month"),
        ("in June 2022", d(2022, 6, 1), d(2022, 7, 1), "month"),
        ("on 8 May, 2023", d(2023, 5, 8), d(2023, 5, 9), "day"),
        ("on May 8th, 2023", d(2023, 5, 8), d(2023, 5, 9), "day"),
        ("on 2023-04-01", d(2023, 4, 1), d(2023, 4, 2), "day"),
        ("in 2021", d(2021, 1, 1), d(2022, 1, 1), "year"),
        ("in March", d(2023, 3, 1), d(2023, 4, 1), "month"),
        ("in June", d(2022, 6, 1), d(2022, 7, 1), "month"),  # the last June before the reference
    ],
)
def test_absolute_expressions(query: str, start: datetime, end: datetime, granularity: str) -> None:
    assert one(query) == (start, end, granularity)


def test_early_mid_late_narrow_a_month() -> None:
    s, e, g = one("in early May 2023")
    assert g == "range" and s < d(2023, 5, 3) and d(2023, 5, 9) < e < d(2023, 5, 15)
    s, e, _ = one("late May 2023")
    assert d(2023, 5, 18) < s and e > d(2023, 5, 31)


def test_relations_before_after() -> None:
    c = parse_query("what happened before June 2023?", REF)
    assert c.relation == "before" and c.window() == (None, d(2023, 6, 1))
    c = parse_query("since 2021", REF)
    assert c.relation == "in" and c.window() == (d(2021, 1, 1), REF)
    assert parse_query("after May 5, 2023", REF).relation == "after"


def test_no_time_in_plain_questions() -> None:
    for q in ("May I ask you something?", "What did Melanie paint?", "How many kids does she have?",
              "I scored 2023 points"):
        assert parse_query(q, REF).spans == (), q


def test_recency_intent() -> None:
    assert parse_query("What is my current record in the league?", REF).recency
    assert parse_query("Where did I go on my most recent trip?", REF).recency
    assert not parse_query("Where did I go on my trip?", REF).recency


@pytest.mark.parametrize(
    ("query", "seconds"),
    [
        ("what did she say at minute 12 of the video?", 720.0),
        ("what happens 3 minutes into the video", 180.0),
        ("at 1:02:03 in the stream", 3723.0),
        ("at 2:30 of the clip", 150.0),
        ("at second 45 of the recording", 45.0),
    ],
)
def test_video_offsets(query: str, seconds: float) -> None:
    c = parse_query(query, REF)
    assert c.video_offset == seconds
    assert c.spans == ()  # "2:30" is not a clock time of day here


def test_residual_drops_the_time_expression() -> None:
    c = parse_query("What did I buy last Saturday?", REF)
    assert c.residual == "What did I buy ?"


def test_annotate_writes_absolute_dates_next_to_relative_ones() -> None:
    text, spans = annotate("Caroline: I went to a support group yesterday and last week too.", REF)
    assert text == "Caroline: I went to a support group yesterday [2023-05-07] and last week [week of 2023-05-01] too."
    assert [s.text for s in spans] == ["yesterday", "last week"]
    text, spans = annotate("We met on 8 May, 2023 and again two weeks ago.", REF)
    assert "8 May, 2023 and" in text  # absolute dates are left as they are
    assert "two weeks ago [~2023-04-24]" in text and len(spans) == 1
    assert annotate("nothing here", REF) == ("nothing here", [])


@pytest.mark.parametrize("text", ["the pyramid was built 5000 years ago", "10000 years ago",
                                  "in the last 3000 years", "1000000 days ago", "99999999 weeks ago"])
def test_expressions_outside_the_calendar_are_left_alone(text: str) -> None:
    # a turn about ancient history must not stop ingestion: datetime holds years 1..9999 only
    assert annotate(text, REF) == (text, [])
    assert parse_query(text, REF).spans == ()


def test_spans_do_not_overlap_and_keep_order() -> None:
    spans = find_spans("yesterday, last week and in May 2023", REF)
    assert [s.text for s in spans] == ["yesterday", "last week", "May 2023"]
    assert all(a.pos[1] <= b.pos[0] for a, b in zip(spans, spans[1:], strict=False))


def test_temporal_score() -> None:
    c = parse_query("what did I do last week?", REF)
    inside = [(d(2023, 5, 3), d(2023, 5, 3))]
    near = [(d(2023, 4, 29), d(2023, 4, 29))]
    far = [(d(2022, 5, 3), d(2022, 5, 3))]
    assert temporal_score(c, inside) == 1.0
    assert 0.0 < temporal_score(c, far) < temporal_score(c, near) < 1.0
    # a unit's mentioned dates count too
    assert temporal_score(c, far + inside) == 1.0
    assert temporal_score(TimeConstraint(), inside) == 0.0
    before = parse_query("before June 2023", REF)
    assert temporal_score(before, inside) == 1.0
    assert temporal_score(before, [(d(2023, 7, 1), d(2023, 7, 1))]) < 1.0
