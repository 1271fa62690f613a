"""Prompt compression as denoising for retrieval (SeCom, Pan et al. 2025): a memory unit is embedded
from its compressed text, so filler and function words weigh less in its vector, while search may
still return the original text.

``Denoiser`` wraps a ``PromptCompressor`` for the write path. It compresses line by line (a turn unit
is one line, an episode is its turns joined by newlines), so an episode's compressed text is exactly
its turns' compressed texts joined, and it remembers recent lines: an open episode is rewritten on
every ``add`` but each of its turns is compressed once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from memsvc.compressors.base import PromptCompressor
from memsvc.exceptions import CompressionError, ConfigError

__all__ = ["COMPRESSED_TEXT", "Denoiser"]

COMPRESSED_TEXT = "compressed_text"
"""Unit metadata key holding the compressed form of the unit's text."""


@dataclass
class Denoiser:
    """Compresses unit texts in the write path: for embedding (``embed``), for the keyword index
    (``lexical``) and for search to return (``returns_compressed``)."""

    compressor: PromptCompressor
    rate: float = 0.7
    embed: bool = True
    """Units are embedded from their compressed text (denoising)."""
    mix: float = 1.0
    """With ``embed``: weight of the compressed text's embedding in the unit vector, the rest being the
    original text's (``normalize(mix·v_compressed + (1 − mix)·v_original)``); 1 embeds the compressed
    text alone."""
    lexical: bool = False
    """The keyword index holds the compressed text too."""
    returns_compressed: bool = False
    """Search returns the compressed text (else the original)."""
    cache_lines: int = 50_000
    _memo: OrderedDict[str, str] = field(default_factory=OrderedDict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.rate <= 1.0:
            raise ConfigError(f"compressor rate must be in (0, 1], got {self.rate!r}")
        if not 0.0 <= self.mix <= 1.0:
            raise ConfigError(f"denoise mix must be in [0, 1], got {self.mix!r}")

    @property
    def producer(self) -> dict[str, str]:
        """``compressor``/``compressor_version`` recorded on every unit it compressed."""
        return {"compressor": self.compressor.name, "compressor_version": str(self.compressor.version)}

    def texts(self, texts: Sequence[str]) -> list[str]:
        """The compressed text of each input (line by line; one compressor call for all new lines)."""
        lines = [t.split("\n") for t in texts]
        wanted = dict.fromkeys(ln for ls in lines for ln in ls if ln.strip())
        got = {ln: self._memo[ln] for ln in wanted if ln in self._memo}
        todo = [ln for ln in wanted if ln not in got]
        if todo:
            try:
                out = self.compressor.compress(todo, rate=self.rate)
            except (CompressionError, ConfigError):
                raise
            except Exception as exc:
                raise CompressionError(f"{self.compressor.name} failed: {exc}") from exc
            if len(out) != len(todo):
                raise CompressionError(f"{self.compressor.name} returned {len(out)} texts for {len(todo)}")
            for src, c in zip(todo, out, strict=True):
                got[src] = self._memo[src] = c.text
            while len(self._memo) > self.cache_lines:
                self._memo.popitem(last=False)
        return ["\n".join(got.get(ln, ln) for ln in ls) for ls in lines]

    def text(self, text: str) -> str:
        """The compressed text of one input."""
        return self.texts([text])[0]
