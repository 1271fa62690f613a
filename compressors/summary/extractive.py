"""Offline extractive summarizer: budgeted coverage of informative words, with centrality.

Each passage (a chat turn) is first denoised: its sentences are kept, most informative first, until
they hold ``keep_share`` of the passage's content words; chit-chat sentences go. Passages are then
chosen greedily by ``new informative words / sqrt(tokens) * (1 + centrality * cos(passage, centroid))``
under the token budget, the way concept-coverage summarizers work (Gillick & Favre 2009, "A Scalable
Global Model for Summarization") combined with centroid salience (Radev et al. 2004, MEAD). A passage
that adds fewer than ``min_gain`` new words (filler, repetition) is never chosen. The summary is the
chosen passages in reading order, each sentence copied verbatim: a faithful extract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memsvc.compressors.base import Passage, Summary, SummaryRequest
from memsvc.compressors.summary._text import informative_words, split_sentences
from memsvc.exceptions import ConfigError
from memsvc.tokens import count_tokens

__all__ = ["ExtractiveSummarizer", "denoise"]


def denoise(text: str, keep_share: float = 0.8) -> str:
    """``text`` without its least informative sentences: sentences are kept, most informative first,
    until they hold ``keep_share`` of the text's informative words (chit-chat-only sentences never
    are); kept sentences stay in their order and are copied verbatim."""
    sents = split_sentences(text)
    if len(sents) <= 1:
        return text.strip()
    words = informative_words(text)
    if not words:
        return text.strip()
    order = sorted(range(len(sents)), key=lambda i: (-len(informative_words(sents[i])), i))
    kept: set[int] = set()
    have: set[str] = set()
    for i in order:
        if len(have) >= keep_share * len(words) or not informative_words(sents[i]):
            break
        kept.add(i)
        have |= informative_words(sents[i])
    return " ".join(sents[i] for i in sorted(kept))


@dataclass
class ExtractiveSummarizer:
    """Extractive summaries by budgeted word coverage and centroid salience (no model call besides
    the optional embedder)."""

    embedder: Any = None
    """An ``Embedder`` for centrality; passages with ``vector`` set need none."""
    min_gain: int = 2
    keep_share: float = 0.8
    centrality: float = 0.5
    name: str = "extractive"
    version: str = "1"

    def __post_init__(self) -> None:
        if self.min_gain < 1:
            raise ConfigError("min_gain must be >= 1")
        if not 0.0 < self.keep_share <= 1.0:
            raise ConfigError("keep_share must be in (0, 1]")
        if self.centrality < 0:
            raise ConfigError("centrality must be >= 0")

    def summarize(self, requests: Sequence[SummaryRequest]) -> list[Summary]:
        return [self._one(r) for r in requests]

    def _centrality(self, passages: Sequence[Passage]) -> np.ndarray:
        n = len(passages)
        if n == 0 or self.centrality == 0:
            return np.zeros(n, dtype=np.float32)
        vecs: list[Any] = [p.vector for p in passages]
        missing = [i for i, v in enumerate(vecs) if v is None]
        if missing:
            if self.embedder is None:
                return np.zeros(n, dtype=np.float32)
            got = self.embedder.embed([passages[i].text for i in missing])
            for i, v in zip(missing, got, strict=True):
                vecs[i] = v
        mat = np.stack([np.asarray(v, dtype=np.float32) for v in vecs])
        mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-9)
        c = mat.mean(axis=0)
        c /= max(float(np.linalg.norm(c)), 1e-9)
        return np.asarray(mat @ c, dtype=np.float32)

    def _one(self, req: SummaryRequest) -> Summary:
        lines: list[str] = []
        costs: list[int] = []
        words: list[frozenset[str]] = []
        for p in req.passages:
            body = denoise(p.text, self.keep_share)
            line = f"{p.speaker}: {body}" if p.speaker else body
            lines.append(line)
            costs.append(count_tokens(line) + 1)  # + the line break
            words.append(informative_words(body))
        cent = self._centrality(req.passages)
        left = req.budget_tokens
        covered: set[str] = set()
        chosen: list[int] = []
        todo = set(range(len(lines)))
        while todo:
            best, best_score = -1, 0.0
            for i in sorted(todo):
                gain = len(words[i] - covered)
                if gain < self.min_gain or costs[i] > left:
                    continue
                score = gain / costs[i] ** 0.5 * (1.0 + self.centrality * float(cent[i]))
                if score > best_score:
                    best, best_score = i, score
            if best < 0:
                break
            chosen.append(best)
            todo.discard(best)
            covered |= words[best]
            left -= costs[best]
        keep = sorted(chosen)
        text = "\n".join(lines[i] for i in keep)
        while keep and count_tokens(text) > req.budget_tokens:  # BPE merges across lines, rarely
            keep.remove(chosen.pop())
            text = "\n".join(lines[i] for i in keep)
        sources = tuple(dict.fromkeys(s for i in keep if (s := req.passages[i].source) is not None))
        return Summary(text=text, tokens=count_tokens(text) if text else 0, sources=sources, extractive=True,
                       kept=tuple(keep))
