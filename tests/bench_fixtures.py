"""Tiny hand-made LoCoMo and LongMemEval files for CLI and benchmark tests (never the real data)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


def _turn(dia: str, speaker: str, text: str, caption: str | None = None) -> dict[str, Any]:
    t = {"speaker": speaker, "dia_id": dia, "text": text}
    if caption:
        t["blip_caption"] = caption
    return t


def locomo_records() -> list[dict[str, Any]]:
    """Two conversations; conv-b has a session gap (session_3 missing, session_4 ignored)."""
    a = {
        "speaker_a": "Ann",
        "speaker_b": "Bob",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            _turn("D1:1", "Ann", "I adopted a puppy named Rex from the shelter yesterday."),
            _turn("D1:2", "Bob", "Congratulations! What breed is Rex?"),
            _turn(
                "D1:3", "Ann", "He is a golden retriever, very playful.", caption="a golden puppy on a rug"
            ),
            _turn("D1:4", "Bob", "I started learning the violin last month."),
        ],
        "session_2_date_time": "10:15 am on 20 June, 2023",
        "session_2": [
            _turn("D2:1", "Ann", "Rex chewed my running shoes this morning."),
            _turn("D2:2", "Bob", "My violin teacher says my bowing improved a lot."),
            _turn("D2:3", "Ann", "We are moving to Lisbon in September for my new job."),
        ],
    }
    b = {
        "speaker_a": "Cleo",
        "speaker_b": "Dan",
        "session_1_date_time": "7:00 pm on 3 March, 2022",
        "session_1": [
            _turn("D1:1", "Cleo", "I baked sourdough bread with rosemary for the party."),
            _turn("D1:2", "Dan", "I ran my first half marathon in Boston on Sunday."),
        ],
        "session_2_date_time": "8:30 am on 4 April, 2022",
        "session_2": [
            _turn("D2:1", "Cleo", "My sister Mira is visiting from Nairobi next week."),
            _turn("D2:2", "Dan", "Ok."),
        ],
        "session_4_date_time": "9:00 am on 9 May, 2022",
        "session_4": [_turn("D4:1", "Cleo", "This session is never read: session_3 is missing.")],
    }
    qa_a = [
        {
            "question": "What is the name of Ann's puppy?",
            "answer": "Rex",
            "evidence": ["D1:1"],
            "category": 4,
        },
        {"question": "What breed is Rex?", "answer": "golden retriever", "evidence": ["D1:3"], "category": 1},
        {
            "question": "When is Ann moving to Lisbon?",
            "answer": "September",
            "evidence": ["D2:3; D1:1"],
            "category": 2,
        },
        {
            "question": "What instrument does Bob play?",
            "answer": "violin",
            "evidence": ["D1:4", "D2:2"],
            "category": 3,
        },
        {
            "question": "What is Bob's dog called?",
            "adversarial_answer": "Rex",
            "evidence": ["D1:1"],
            "category": 5,
        },
        {"question": "No evidence here", "answer": "x", "evidence": ["D"], "category": 4},
    ]
    qa_b = [
        {"question": "What did Cleo bake?", "answer": "sourdough", "evidence": ["D1:1"], "category": 4},
        {
            "question": "Where did Dan run a half marathon?",
            "answer": "Boston",
            "evidence": ["D1:2"],
            "category": 4,
        },
        {"question": "Who is visiting Cleo?", "answer": "Mira", "evidence": ["D2:1"], "category": 1},
    ]
    return [
        {
            "sample_id": "conv-a",
            "conversation": a,
            "qa": qa_a,
            "event_summary": {},
            "observation": {},
            "session_summary": {},
        },
        {"sample_id": "conv-b", "conversation": b, "qa": qa_b},
    ]


def write_locomo(tmp: Path) -> Path:
    p = tmp / "locomo_tiny.json"
    p.write_text(json.dumps(locomo_records()), encoding="utf-8")
    return p


def longmemeval_records() -> list[dict[str, Any]]:
    def q(
        qid: str, question: str, sessions: list[list[dict[str, Any]]], answer_sessions: list[str]
    ) -> dict[str, Any]:
        ids = [
            f"sess_{qid}_{i}" if f"answer_{qid}_{i}" not in answer_sessions else f"answer_{qid}_{i}"
            for i in range(len(sessions))
        ]
        return {
            "question_id": qid,
            "question_type": "single-session-user",
            "question": question,
            "answer": "x",
            "question_date": "2023/06/01 (Thu) 10:00",
            "haystack_session_ids": ids,
            "haystack_dates": [f"2023/05/{10 + i:02d} (Wed) 0{i}:30" for i in range(len(sessions))],
            "haystack_sessions": sessions,
            "answer_session_ids": answer_sessions,
        }

    u = lambda c, h=False: {"role": "user", "content": c, **({"has_answer": True} if h else {})}  # noqa: E731
    a = lambda c: {"role": "assistant", "content": c}  # noqa: E731
    return [
        q(
            "q1",
            "What colour is my new bike?",
            [
                [u("I need ideas for a vegetarian lasagna."), a("Try spinach and ricotta layers.")],
                [
                    u("I bought a new bike, it is bright orange with a basket.", True),
                    a("Orange bikes are easy to see!"),
                    u("   "),
                ],
                [u("Can you recommend a sci-fi novel?"), a("Consider The Left Hand of Darkness.")],
            ],
            ["answer_q1_1"],
        ),
        q("q2_abs", "What is my cat's name?", [[u("I like tea."), a("Green or black?")]], []),
        q(
            "q3",
            "Where did I go hiking and with whom?",
            [
                [u("I went hiking in the Dolomites in July.", True), a("Beautiful mountains.")],
                [u("My friend Paolo joined me for the hiking trip.", True), a("Nice to have company.")],
                [u("What is a good stretching routine?"), a("Hamstring and calf stretches help.")],
            ],
            ["answer_q3_0", "answer_q3_1"],
        ),
    ]


def write_longmemeval(tmp: Path) -> Path:
    p = tmp / "longmemeval_tiny.json.gz"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        json.dump(longmemeval_records(), f)
    return p
