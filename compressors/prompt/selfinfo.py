"""Offline default compressor: drop the least informative words by corpus self-information.

Self-information of a word is −log10 of its frequency in general English (the ``wordfreq`` tables,
shipped with the package, offline); frequent function words ("the", "to", "really") go first, rare
content words, names, numbers and dates stay. Idea from Selective Context / LLMLingua's token
self-information, with corpus statistics in place of a language model: no model, ~microseconds a word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from memsvc.compressors.prompt.token_drop import TokenDropCompressor
from memsvc.exceptions import MissingDependencyError

__all__ = ["SelfInfoCompressor"]


@lru_cache(maxsize=200_000)
def _zipf(word: str) -> float:
    try:
        from wordfreq import zipf_frequency
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependencyError("pip install wordfreq") from exc
    return float(zipf_frequency(word, "en"))


@dataclass
class SelfInfoCompressor(TokenDropCompressor):
    """Token dropping scored by self-information (8 − Zipf frequency)."""

    name: str = "selfinfo"
    version: str = "1"

    def score(self, words: Sequence[str]) -> list[float]:
        return [8.0 - _zipf(w.lower()) for w in words]
