"""Token-dropping compression as a template: subclasses score words, the base keeps the best.

``TokenDropCompressor.compress`` removes filler phrases and immediate repetitions, then drops the
lowest-scoring unprotected words until about ``rate`` of the cl100k tokens remain. Only ``score``
differs between backends (as a kvpress press writes only its score).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from memsvc.compressors.base import Compressed
from memsvc.compressors.prompt.protect import WORD, is_protected
from memsvc.exceptions import ConfigError
from memsvc.tokens import count_tokens

__all__ = ["FILLERS", "TokenDropCompressor"]

FILLERS = re.compile(
    r"(?i)(?<![\w'])(?:um+|uh+|erm+|hmm+|haha(?:ha)*|hehe|lol|lmao|omg|you know,?|i mean,?|"
    r"kind of|sort of|to be honest,?|basically,?|actually,?|literally,?)(?![\w'])[,!]?"
)
_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_PUNCT = re.compile(r"\s+([,.!?;:])")
_DOUBLE_PUNCT = re.compile(r"([,;:])\s*[,;:]+")
_LEAD_PUNCT = re.compile(r"(^|\n)\s*[,;:]\s*")
_RUN_END = re.compile(r"([.!?])(?:\s*[.!?,;:])+")


def _tidy(text: str) -> str:
    text = _SPACE_PUNCT.sub(r"\1", text)
    text = _DOUBLE_PUNCT.sub(r"\1", text)
    text = _RUN_END.sub(r"\1", text)
    text = _LEAD_PUNCT.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip()


@dataclass
class TokenDropCompressor:
    """Base class: filler removal, de-duplication, then score-ordered word dropping."""

    rate: float = 0.7
    """Default share of tokens to keep."""
    remove_fillers: bool = True
    name: str = "token-drop"
    version: str = "1"

    def __post_init__(self) -> None:
        if not 0.05 <= self.rate <= 1.0:
            raise ConfigError("rate must be in [0.05, 1.0]")

    def score(self, words: Sequence[str]) -> list[float]:
        """Importance of each word (higher is kept first)."""
        raise NotImplementedError

    def compress(
        self,
        texts: Sequence[str],
        rate: float | None = None,
        target_tokens: int | None = None,
        keep: Sequence[str] = (),
        question: str | None = None,
    ) -> list[Compressed]:
        r = self.rate if rate is None else rate
        if not 0.0 < r <= 1.0:
            raise ConfigError("rate must be in (0, 1]")
        keep_set = {k.lower() for k in keep}
        if question:
            keep_set |= {w.lower() for w in WORD.findall(question) if w[:1].isalnum() and len(w) > 3}
        return [self._one(t, r, target_tokens, keep_set) for t in texts]

    def _one(self, text: str, rate: float, target: int | None, keep: set[str]) -> Compressed:
        original = count_tokens(text)
        work = FILLERS.sub("", text) if self.remove_fillers else text
        toks = WORD.findall(work)
        # words (not spaces/punctuation), with protection and immediate-repeat flags
        idx, words, prot = [], [], []
        initial, prev = True, ""
        for i, tok in enumerate(toks):
            if tok.isspace():
                continue
            if tok[0].isalnum() or tok[0] == "_":
                if tok.lower() == prev:  # "so so", "very very"
                    toks[i] = ""
                    continue
                idx.append(i)
                words.append(tok)
                speaker = i + 1 < len(toks) and toks[i + 1].startswith(":")  # "Caroline: ..."
                prot.append(speaker or is_protected(tok, initial, keep))
                prev, initial = tok.lower(), False
            else:
                prev = ""
                if tok.endswith((".", "!", "?", ":")) or "\n" in tok:
                    initial = True
        goal = target if target is not None else int(round(original * rate))
        if words and count_tokens("".join(toks)) > goal:
            scores = self.score(words)
            order = sorted((s, n) for n, s in enumerate(scores) if not prot[n])
            # each cl100k word costs ~1 token with its leading space: drop in score order, then verify
            excess = count_tokens("".join(toks)) - goal
            dropped = 0
            for _, n in order:
                if dropped >= excess:
                    break
                toks[idx[n]] = ""
                dropped += max(1, count_tokens(" " + words[n]))
        out = _tidy("".join(toks))
        return Compressed(out, original, count_tokens(out))
