"""Time-anchored question parsing (the content / time-constraint split used for video questions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memsvc.video.query import parse_time_query

START = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


@pytest.mark.parametrize(
    ("query", "lo", "hi", "anchor", "order"),
    [
        ("what happened around 12:30?", 25, 35, 30, None),
        ("what was happening at 12:05 pm", 3, 7, 5, None),
        ("what did the camera show at minute 12 of the video?", 10, 14, 12, None),
        ("what was I doing 20 minutes in", 18, 22, 20, None),
        ("what happened in the first five minutes?", 0, 5, None, None),
        ("in the last 10 minutes what did I do", 50, 60, None, None),
        ("who came between 12:10 and 12:20", 10, 20, None, None),
        ("when was the last time the door opened?", None, None, None, "latest"),
        ("the first time I cooked", None, None, None, "earliest"),
    ],
)
def test_parse(query: str, lo: int | None, hi: int | None, anchor: int | None, order: str | None) -> None:
    tq = parse_time_query(query, stream_start=START, stream_end=END)
    if lo is None:
        assert tq.time_range is None
    else:
        assert tq.time_range == (START + timedelta(minutes=lo), START + timedelta(minutes=hi))  # type: ignore[operator]
    assert tq.anchor == (None if anchor is None else START + timedelta(minutes=anchor))
    assert tq.order == order


def test_content_is_kept_without_the_time_phrase() -> None:
    tq = parse_time_query("when was the last time the door opened?", stream_start=START)
    assert "door opened" in tq.text and "last time" not in tq.text
    assert parse_time_query("who came between 12:10 and 12:20", stream_start=START).text == "who came"
    assert parse_time_query("a dog in the garden").time_range is None
