"""The benchmark evidence rule (provenance AND >= 50 % content words) on a hand-made fixture."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memsvc import Hit, Level
from memsvc.benchmarks.evidence import (
    STOP_WORDS,
    content_words,
    covered,
    groups_touched,
    recall_from_hits,
)
from memsvc.benchmarks.results import percentiles

T = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)

# event id -> evidence key, and evidence key -> the turn text the rule reads
KEY_OF = {"e1": "D1:1", "e2": "D1:2", "e3": "D1:3", "e4": "D1:4"}
TEXT_OF = {
    "D1:1": "Ann: I adopted a puppy named Rex from the shelter yesterday.",
    "D1:2": "Bob: Congratulations! What breed is Rex?",
    "D1:3": "Ann: He is a golden retriever, very playful. [shares a photo: a golden puppy on a rug]",
    "D1:4": "Yes, okay! :)",  # no content words at all
}


def hit(text: str, sources: list[str], level: Level = Level.TURN) -> Hit:
    return Hit(
        id="h", text=text, score=1.0, level=level, start_time=T, end_time=T, source_ids=sources, user_id="u"
    )


def test_content_words_rules() -> None:
    assert content_words("The DOG ran to the Park, really fast; it's OK 42") == {"dog", "ran", "park", "fast"}
    assert content_words("yeah yes okay really the and") == set()
    assert {"the", "and", "really", "okay", "should", "yeah"} <= STOP_WORDS
    assert len(STOP_WORDS) == 107  # the shared list; a change here breaks agreement with the scorer


def test_covered_threshold_is_half() -> None:
    turn = "alpha beta gamma delta"  # 4 content words
    assert covered(turn, "alpha beta")  # 2/4 = 50 %
    assert not covered(turn, "alpha zeta")  # 1/4
    assert covered("ok the and", "anything")  # no content words: always covered
    assert covered(turn, "ignored", unit_words={"alpha", "gamma"})


def test_provenance_and_coverage_both_needed() -> None:
    ev = {"D1:1"}
    # the unit lists the turn and holds its words: recalled
    assert recall_from_hits([hit(TEXT_OF["D1:1"], ["e1"])], ev, KEY_OF, TEXT_OF) == 1.0
    # provenance without the words (a summary "covering" the turn): not recalled
    assert (
        recall_from_hits([hit("Ann talked about pets.", ["e1", "e2"], Level.SUMMARY)], ev, KEY_OF, TEXT_OF)
        == 0
    )
    # the words without provenance (another turn that repeats them): not recalled
    assert recall_from_hits([hit(TEXT_OF["D1:1"], ["e2"])], ev, KEY_OF, TEXT_OF) == 0
    # an episode holding both turns recalls both; unknown source ids are ignored
    ep = hit(TEXT_OF["D1:1"] + "\n" + TEXT_OF["D1:2"], ["e1", "e2", "zzz"], Level.EPISODE)
    assert recall_from_hits([ep], {"D1:1", "D1:2"}, KEY_OF, TEXT_OF) == 1.0


def test_partial_recall_and_dict_hits() -> None:
    hits = [
        {"text": "Ann: adopted a puppy named Rex", "source_ids": ["e1"]},  # 5 of its 7 content words
        {"text": "golden", "source_ids": ["e3"]},  # 1 of 8 content words
    ]
    assert recall_from_hits(hits, ["D1:1", "D1:3"], KEY_OF, TEXT_OF) == 0.5
    # a turn without content words needs only provenance
    assert recall_from_hits([{"text": "", "source_ids": ["e4"]}], ["D1:4"], KEY_OF, TEXT_OF) == 1.0
    assert recall_from_hits([], ["D1:4"], KEY_OF, TEXT_OF) == 0.0


def test_groups_touched_uses_the_same_rule() -> None:
    group_of = {"D1:1": "s1", "D1:2": "s1", "D1:3": "s2", "D1:4": "s3"}
    hits = [hit(TEXT_OF["D1:2"], ["e2"]), hit("nothing relevant", ["e3"]), hit("", ["e4"])]
    assert groups_touched(hits, KEY_OF, TEXT_OF, group_of) == {"s1", "s3"}


def test_percentiles_nearest_rank() -> None:
    assert percentiles([]) == {"p50": 0.0, "p95": 0.0}
    xs = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentiles(xs) == {"p50": 51.0, "p95": 96.0}


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_hit_text_never_covers(text: str) -> None:
    assert recall_from_hits([hit(text or " ", ["e1"])], ["D1:1"], KEY_OF, TEXT_OF) == 0.0
