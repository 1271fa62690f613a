"""Budget packing on synthetic hits: never over budget, chronological, grouped headers, episodes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from memsvc._types import Level
from memsvc.models import Hit
from memsvc.retrieval.packing import by_value_per_token, format_context, order_key, pack
from memsvc.tokens import count_tokens

T0 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
TEXTS = ["Caroline: I went to a support group yesterday.", "Melanie: Wow!", "x" * 300,
         "Melanie: I painted a sunrise 🌅 over the lake\nwith a new line", "Bob: 12:30 [2023-01-01] ... ok"]


def turn(i: int, text: str, session: str, day: int, score: float) -> Hit:
    return Hit(id=str(uuid.uuid4()), text=text, score=score, level=Level.TURN, start_time=T0 + timedelta(days=day),
               end_time=T0 + timedelta(days=day), source_ids=[f"e{i}"], user_id="u", session_id=session, seq=i)


hit_lists = st.lists(
    st.tuples(st.sampled_from(TEXTS), st.sampled_from(["s1", "s2", "s3"]), st.integers(0, 3), st.floats(0, 3)),
    min_size=0, max_size=40,
).map(lambda xs: sorted((turn(i, t, s, d, sc) for i, (t, s, d, sc) in enumerate(xs)), key=lambda h: -h.score))


@settings(max_examples=200, deadline=None)
@given(hits=hit_lists, budget=st.integers(1, 600), limit=st.one_of(st.none(), st.integers(1, 10)),
       sep=st.sampled_from(["\n", "\n\n", " | "]), cost_exponent=st.sampled_from([0.0, 0.5, 1.0]))
def test_never_over_budget_and_chronological(hits: list[Hit], budget: int, limit: int | None, sep: str,
                                             cost_exponent: float) -> None:
    got = pack(hits, budget, sep, limit, cost_exponent=cost_exponent, cost_floor=16)
    assert count_tokens(format_context(got, sep)) <= budget
    assert [order_key(h) for h in got] == sorted(order_key(h) for h in got)
    assert limit is None or len(got) <= limit
    srcs = [s for h in got for s in h.source_ids]
    assert len(srcs) == len(set(srcs))


def test_one_header_per_session_and_day() -> None:
    hits = [turn(0, "A: one", "s1", 0, 1.0), turn(1, "B: two", "s1", 0, 0.9), turn(2, "A: three", "s2", 5, 0.8),
            turn(3, "B: four", "s1", 0, 0.7)]
    got = pack(hits, 1000)
    assert format_context(got) == "[8 May 2023]\nA: one\nB: two\nB: four\n[13 May 2023]\nA: three"
    assert [h.tokens for h in got] == [count_tokens(h.text) for h in got]


def test_greedy_by_rank_skips_what_does_not_fit() -> None:
    big = turn(0, "x" * 2000, "s1", 0, 2.0)
    small = turn(1, "A: small", "s1", 0, 1.0)
    assert [h.id for h in pack([big, small], 50)] == [small.id]
    assert pack([big], 5) == []


def test_whole_episode_replaces_most_of_its_turns() -> None:
    turns = [turn(i, f"A: line {i}", "s1", 0, 1.0 - i / 10) for i in range(4)]
    ep = Hit(id="ep", text="\n".join(t.text for t in turns), score=0.0, level=Level.EPISODE, start_time=T0,
             end_time=T0, source_ids=[f"e{i}" for i in range(4)], user_id="u", session_id="s1", seq=0)
    of = {t.id: "ep" for t in turns}
    got = pack(turns[:3], 1000, episodes={"ep": ep}, episode_of=of, episode_fill=0.5)
    assert [h.id for h in got] == ["ep"] and got[0].components["episode_fill"] == 3.0
    # too little of it packed: the turns stay
    got = pack(turns[:1], 1000, episodes={"ep": ep}, episode_of=of, episode_fill=0.5)
    assert [h.id for h in got] == [turns[0].id]
    # no room for the rest of the episode: the turns stay
    tight = count_tokens(format_context(pack(turns[:3], 1000)))
    got = pack(turns[:3], tight + 1, episodes={"ep": ep}, episode_of=of, episode_fill=0.5)
    assert [h.id for h in got] == [t.id for t in turns[:3]]


def test_value_per_token_lets_short_turns_past_a_long_one() -> None:
    long = "assistant: " + "Here are some general tips about rackets and strings. " * 30  # ~330 tokens
    hits = [turn(0, long, "s1", 0, 2.0)] + [turn(i, f"user: I bought item number {i} at the shop.", "s1", 0, 1.9 - i / 100)
                                            for i in range(1, 11)]
    by_rank = pack(hits, 400)
    assert hits[0] in by_rank and len(by_rank) < 8
    by_value = pack(hits, 400, cost_exponent=0.5, cost_floor=64)
    assert hits[0] not in by_value and len(by_value) == 10  # (64/330) ** 0.5 * 2.0 < 1.8: after every short turn
    # short hits keep their rank order among themselves; equal values keep rank order (stable)
    order = by_value_per_token(hits, 0.5, 64)
    assert order[:10] == hits[1:] and order[10] is hits[0]
    assert by_value_per_token(hits[1:], 1.0, 64) == hits[1:]
    assert all(h.tokens == count_tokens(h.text) for h in hits)


def test_value_per_token_spares_the_turns_of_the_party_asked_about() -> None:
    answer = "assistant: " + "The back-end languages I recommended are Python, Java and Go. " * 20
    hits = [turn(0, answer, "s1", 0, 2.0)] + [turn(i, f"user: short line {i}", "s1", 0, 1.5) for i in range(1, 6)]
    assert by_value_per_token(hits, 0.5, 64)[0] is not hits[0]
    hits[0].components["role"] = 0.5  # the question asks what the assistant said
    assert by_value_per_token(hits, 0.5, 64)[0] is hits[0]
