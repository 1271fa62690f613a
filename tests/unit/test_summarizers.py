"""Summarizers: the extractive default (faithful, within budget, honest sources) and the LangChain
chat-model backend (validation, retries, fallback) on langchain-core's own fake chat model."""

from __future__ import annotations

import json

import pytest

from memsvc.compressors.base import Passage, Summarizer, SummaryRequest
from memsvc.compressors.summary import SUMMARIZERS, ExtractiveSummarizer, denoise
from memsvc.embedders import HashingEmbedder
from memsvc.exceptions import CompressionError, ConfigError
from memsvc.tokens import count_tokens

TURNS = [
    ("Ann", "Hey Mel! Good to see you! How have you been?"),
    ("Mel", "Wow, that's great! Thanks!"),
    ("Ann", "I moved to Lisbon last month. The light there is beautiful and the rent is 900 euros."),
    ("Mel", "What made you pick Lisbon over Porto?"),
    ("Ann", "My sister Clara lives there and she found me a flat near the river."),
    ("Mel", "Awesome!"),
    ("Ann", "I also adopted a puppy named Rex, a golden retriever who loves the beach."),
]


def _req(budget: int = 60) -> SummaryRequest:
    return SummaryRequest([Passage(text=t, speaker=s, source=f"e{i}") for i, (s, t) in enumerate(TURNS)], budget)


def test_extractive_is_a_faithful_extract_within_budget() -> None:
    summ = ExtractiveSummarizer(embedder=HashingEmbedder())
    assert isinstance(summ, Summarizer)
    out = summ.summarize([_req(60)])[0]
    assert out.extractive and 0 < out.tokens <= 60 and count_tokens(out.text) == out.tokens
    for line in out.text.split("\n"):
        speaker, body = line.split(": ", 1)
        src = [t for s, t in TURNS if s == speaker and all(sent in t for sent in body.split(" ") if sent)]
        assert src, f"{line!r} is not copied from a passage"
    assert "Awesome" not in out.text and "Thanks" not in out.text  # chit-chat goes first
    assert set(out.sources) == {f"e{i}" for i in out.kept}
    assert "Lisbon" in out.text


def test_extractive_is_deterministic_and_respects_tiny_budgets() -> None:
    summ = ExtractiveSummarizer()
    a, b = summ.summarize([_req(40), _req(40)])
    assert a == b
    tiny = summ.summarize([_req(3)])[0]
    assert tiny.tokens <= 3
    empty = summ.summarize([SummaryRequest([Passage("ok", source="x")], 50)])[0]
    assert empty.text == "" and empty.sources == ()


def test_denoise_keeps_content_words() -> None:
    text = "Wow! Thanks so much. I started a pottery class on Tuesdays at the community center."
    out = denoise(text)
    assert "pottery class" in out and "Wow" not in out


def test_bad_options_raise_config_error() -> None:
    with pytest.raises(ConfigError):
        ExtractiveSummarizer(min_gain=0)
    with pytest.raises(ConfigError):
        SUMMARIZERS.create("no-such-summarizer")
    with pytest.raises(ConfigError):
        SUMMARIZERS.create("langchain", model="no.such.module:Model")
    with pytest.raises(ConfigError):
        SUMMARIZERS.create("langchain")


def _fake(replies: list[str]):  # type: ignore[no-untyped-def]
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    return FakeListChatModel(responses=replies)


def test_langchain_summarizer_parses_and_validates() -> None:
    good = json.dumps({"summary": "Ann moved to Lisbon; rent 900 euros; puppy Rex.", "used": [3, 7]})
    summ = SUMMARIZERS.create("langchain", model=_fake([good]))
    out = summ.summarize([_req(60)])[0]
    assert not out.extractive and out.sources == ("e2", "e6") and out.tokens <= 60
    assert summ.name.startswith("langchain:")


def test_langchain_summarizer_retries_then_falls_back() -> None:
    invented = json.dumps({"summary": "Ann moved to Lisbon in 2019 and pays 1200 euros.", "used": [3]})
    good = json.dumps({"summary": "Ann moved to Lisbon.", "used": [3]})
    model = _fake(["not json at all", invented, good])
    out = SUMMARIZERS.create("langchain", model=model, retries=2).summarize([_req(60)])[0]
    assert out.text == "Ann moved to Lisbon." and out.sources == ("e2",)
    fallback = SUMMARIZERS.create("langchain", model=_fake(["nope"] * 3), retries=1).summarize([_req(60)])[0]
    assert fallback.extractive and "Lisbon" in fallback.text
    with pytest.raises(CompressionError):
        SUMMARIZERS.create("langchain", model=_fake(["nope"] * 3), retries=1, fallback=False).summarize([_req(60)])
