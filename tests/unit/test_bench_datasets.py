"""Loading the benchmark data formats (tiny hand-made files)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from memsvc.benchmarks.datasets import (
    iter_steps,
    load_locomo,
    load_longmemeval,
    parse_locomo_date,
    parse_longmemeval_date,
)
from tests.bench_fixtures import write_locomo, write_longmemeval


def test_dates() -> None:
    assert parse_locomo_date("1:56 pm on 8 May, 2023") == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert parse_locomo_date(" 10:15 am on 20 June, 2023") == datetime(2023, 6, 20, 10, 15, tzinfo=UTC)
    assert parse_longmemeval_date("2023/05/28 (Sun) 19:47") == datetime(2023, 5, 28, 19, 47, tzinfo=UTC)


def test_load_locomo(tmp_path: Path) -> None:
    a, b = load_locomo(write_locomo(tmp_path))
    assert (a.sample_id, len(a.sessions), a.n_turns) == ("conv-a", 2, 7)
    assert a.sessions[0][0] == "1:56 pm on 8 May, 2023"
    assert a.sessions[0][1][2] == (
        "D1:3",
        "Ann",
        "He is a golden retriever, very playful. [shares a photo: a golden puppy on a rug]",
    )
    # category 5 and evidence-less QAs dropped; "D2:3; D1:1" split by the regex
    assert [q.category for q in a.qas] == [4, 1, 2, 3]
    assert a.qas[2].evidence == {"D2:3", "D1:1"}
    # sessions are read up to the first missing one
    assert len(b.sessions) == 2 and b.n_turns == 4


def test_load_longmemeval_gz(tmp_path: Path) -> None:
    qs = load_longmemeval(write_longmemeval(tmp_path))
    assert [q.question_id for q in qs] == ["q1", "q2_abs", "q3"]
    assert [q.abstention for q in qs] == [False, True, False]
    assert qs[0].n_turns == 6  # the blank turn is not counted
    assert qs[2].answer_session_ids == {"answer_q3_0", "answer_q3_1"}
    assert [q.question_id for q in iter_steps(qs, 2)] == ["q1", "q3"]
    assert [q.question_id for q in iter_steps(qs, 1, 2)] == ["q1", "q2_abs"]
