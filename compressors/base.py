"""Compressor contracts.

    Summarizer --> ExtractiveSummarizer (compressors.summary.extractive: offline default)
               --> ChatModelSummarizer (compressors.summary.langchain: any LangChain BaseChatModel)

Summarizers never run in the write path: consolidation calls them on closed episodes (episode
summaries) and on episode summaries (daily and topic memories).

Shapes: a ``SummaryRequest`` holds ``Passage``s in reading order (one per chat turn, or one per kept
passage of a lower-level summary), each naming the event it comes from; the summary lists as
``sources`` only the passages whose substance its text keeps, so provenance stays honest. Budgets
and token counts are cl100k_base tokens (``memsvc.tokens``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from memsvc._types import Vector

__all__ = ["Passage", "Summarizer", "Summary", "SummaryRequest"]


@dataclass(frozen=True, slots=True)
class Passage:
    """One piece of source text (a chat turn), with the id of the event it comes from."""

    text: str
    speaker: str | None = None
    source: str | None = None
    vector: Vector | None = None
    """Its embedding when already known (saves the summarizer an embedding call)."""


@dataclass(frozen=True, slots=True)
class SummaryRequest:
    """Passages to summarize into at most ``budget_tokens`` tokens."""

    passages: Sequence[Passage]
    budget_tokens: int
    hint: str | None = None
    """What the summary is about (``"2023-05-08"``, ``"topic"``); LLM prompts may use it."""


@dataclass(frozen=True, slots=True)
class Summary:
    """A summary text and the sources (passage ``source`` ids) whose substance it keeps."""

    text: str
    tokens: int
    sources: tuple[str, ...] = ()
    extractive: bool = True
    """True when every sentence of ``text`` is copied verbatim from the passages."""
    kept: tuple[int, ...] = field(default=())
    """Indices of the passages the summary keeps (extractive summaries)."""


@runtime_checkable
class Summarizer(Protocol):
    """Summarizes batches of passage lists under token budgets."""

    name: str
    """Recorded on every unit it produces (``units.compressor``)."""
    version: str

    def summarize(self, requests: Sequence[SummaryRequest]) -> list[Summary]:
        """One ``Summary`` per request, in order; ``tokens <= budget_tokens``. An empty text means
        nothing in the passages was worth keeping."""
        ...
