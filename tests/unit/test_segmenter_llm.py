"""LLM segmenter: LangChain fake chat models as the wire, validation on real malformed answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import langchain_core  # noqa: F401  (a [dev] dependency: a broken install fails here)
import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402

from memsvc.exceptions import ConfigError, SegmentationError  # noqa: E402
from memsvc.segmenters import SEGMENTERS, BoundarySegmenter, LLMSegmenter, SegmentItem  # noqa: E402
from memsvc.segmenters.llm import parse_boundaries  # noqa: E402


def synthetic_items(seed: int = 0) -> list[SegmentItem]:
    rng = np.random.default_rng(seed)
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    return [SegmentItem(rng.normal(size=16).astype(np.float32), t0 + timedelta(seconds=i), f"turn {i}.", "AB"[i % 2])
            for i in range(12)]

VALID = [
    ('{"boundaries": [2, 5]}', [2, 5]),
    ('```json\n{"boundaries": [3]}\n```', [3]),
    ('Here is the segmentation:\n{"boundaries": [1, 4, 7]}\nLet me know!', [1, 4, 7]),
    ("[2, 6]", [2, 6]),
    ('{"boundaries": []}', []),
    ('{"boundaries": [4, 9]}', [4]),  # the last turn (9 of 10) is not a boundary to keep
]
MALFORMED = [
    "",
    "Sure! The topic changes after turns 2 and 5.",
    '```json\n{"boundaries": [2, 5,]}\n```',
    '{"boundaries": "2, 5"}',
    '{"boundary": [2, 5]}',
    '{"boundaries": [5, 2]}',
    '{"boundaries": [2, 2]}',
    '{"boundaries": [2, 40]}',
    '{"boundaries": [-1, 3]}',
    '{"boundaries": [2.5]}',
    '{"boundaries": [true]}',
    '{"boundaries": [2, 5]',
    "{'boundaries': [2, 5]}",
    "<think>The user talks about dogs, then football.</think>",
    "null",
]


@pytest.mark.parametrize(("raw", "want"), VALID)
def test_parse_valid(raw: str, want: list[int]) -> None:
    assert parse_boundaries(raw, 10) == want


@pytest.mark.parametrize("raw", MALFORMED)
def test_parse_rejects_malformed(raw: str) -> None:
    with pytest.raises(SegmentationError):
        parse_boundaries(raw, 10)


def test_uses_the_model_answer() -> None:
    items = synthetic_items(seed=1)[:10]
    seg = LLMSegmenter(chat_model=FakeListChatModel(responses=['{"boundaries": [2, 6]}']))
    assert seg.split(items, final=True) == [3, 4, 3]
    assert seg.failures == 0


@pytest.mark.parametrize("raw", MALFORMED[:6])
def test_falls_back_on_malformed_output(raw: str) -> None:
    items = synthetic_items(seed=1)[:10]
    seg = LLMSegmenter(chat_model=FakeListChatModel(responses=[raw]))
    assert seg.split(items, final=True) == BoundarySegmenter().split(items, final=True)
    assert seg.failures == 1


def test_online_waits_for_a_window_and_keeps_the_last_segment_open() -> None:
    items = synthetic_items(seed=1)[:10]
    seg = LLMSegmenter(chat_model=FakeListChatModel(responses=['{"boundaries": [2, 6]}']), window=8)
    assert seg.split(items[:5], final=False) == []
    assert seg.split(items, final=False) == [3, 4]


def test_built_from_config_by_dotted_path() -> None:
    seg = SEGMENTERS.create(
        "llm",
        chat_model="langchain_core.language_models.fake_chat_models.FakeListChatModel",
        chat_options={"responses": ['{"boundaries": [1]}']},
    )
    assert seg.split(synthetic_items(seed=0)[:4], final=True) == [2, 2]
    with pytest.raises(ConfigError):
        SEGMENTERS.create("llm")
    with pytest.raises(ConfigError):
        SEGMENTERS.create("llm", chat_model="no.such.ChatModel")
