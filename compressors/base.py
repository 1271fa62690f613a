"""Compression contracts.

    PromptCompressor --> IdentityCompressor ("none")
                     --> TokenDropCompressor (template: score words, keep the best) --> SelfInfoCompressor
                     --> LLMLingua2Compressor (llmlingua's token classifier)
    Summarizer --> ExtractiveSummarizer (compressors.summary.extractive: offline default)
               --> ChatModelSummarizer (compressors.summary.langchain: any LangChain BaseChatModel)

A prompt compressor shortens texts while keeping what matters for retrieval and answering: protected
tokens (names, numbers, dates, anything in ``keep``) always survive, and ``rate`` is the share of
cl100k tokens to keep (0.7 keeps about 70 %). Compressors never add words.

Summarizers never run in the write path: consolidation calls them on closed episodes (episode
summaries) and on episode summaries (daily and topic memories). A ``SummaryRequest`` holds ``Passage``s
in reading order (one per chat turn, or one per kept passage of a lower-level summary), each naming
the event it comes from; the summary lists as ``sources`` only the passages whose substance its text
keeps, so provenance stays honest. Budgets and token counts are cl100k_base tokens (``memsvc.tokens``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from memsvc._types import Vector

__all__ = [
    "Compressed",
    "IdentityCompressor",
    "Passage",
    "PromptCompressor",
    "Summarizer",
    "Summary",
    "SummaryRequest",
]


@dataclass(frozen=True, slots=True)
class Compressed:
    """One compressed text with its cl100k token counts."""

    text: str
    original_tokens: int
    compressed_tokens: int

    @property
    def kept_ratio(self) -> float:
        """compressed / original tokens (1.0 for an empty input)."""
        return self.compressed_tokens / self.original_tokens if self.original_tokens else 1.0


@runtime_checkable
class PromptCompressor(Protocol):
    """Shortens texts (batched)."""

    name: str
    version: str

    def compress(
        self,
        texts: Sequence[str],
        rate: float | None = None,
        target_tokens: int | None = None,
        keep: Sequence[str] = (),
        question: str | None = None,
    ) -> list[Compressed]:
        """Compress each text to about ``rate`` of its tokens (or ``target_tokens`` each), never
        dropping a token listed in ``keep``; ``question`` may steer what is kept."""
        ...


@dataclass
class IdentityCompressor:
    """Keeps texts as they are (the reference implementation; ``compressor.backend = "none"``)."""

    name: str = "none"
    version: str = "1"

    def compress(
        self,
        texts: Sequence[str],
        rate: float | None = None,
        target_tokens: int | None = None,
        keep: Sequence[str] = (),
        question: str | None = None,
    ) -> list[Compressed]:
        from memsvc.tokens import count_tokens

        return [Compressed(t, count_tokens(t), count_tokens(t)) for t in texts]



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
