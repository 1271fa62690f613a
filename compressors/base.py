"""Compression contracts.

    PromptCompressor --> IdentityCompressor ("none")
                     --> TokenDropCompressor (template: score words, keep the best) --> SelfInfoCompressor
                     --> LLMLingua2Compressor (llmlingua's token classifier)

A prompt compressor shortens texts while keeping what matters for retrieval and answering: protected
tokens (names, numbers, dates, anything in ``keep``) always survive, and ``rate`` is the share of
cl100k tokens to keep (0.7 keeps about 70 %). Compressors never add words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Compressed", "IdentityCompressor", "PromptCompressor"]


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
