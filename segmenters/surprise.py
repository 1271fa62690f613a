"""Surprise-based segmenter (EM-LLM): a boundary where a causal LM is surprised by the next turn.

    GapScoringSegmenter --> SurpriseSegmenter

Fountas et al., "Human-like Episodic Memory for Infinite Context LLMs" (EM-LLM, 2024): token surprise
s_t = -log P(x_t | x_<t); a boundary where s_t > mu + gamma * sigma over a local window. Turns are the
units here: the surprise of a turn is the mean surprise of its tokens given the open episode before it
(``"Speaker: text"`` lines), and the gap before turn t scores (s_t - mu) / sigma over the surprises of
the up to ``window`` turns before it in the open episode; ``threshold`` is gamma (1 in the paper).
With ``refine`` > 0, each cut may move up to ``refine`` turns to the position that maximises the
modularity Q = 1/(2m) sum_ij [A_ij - k_i k_j / 2m] delta(c_i, c_j) of the two sides on the graph
A_ij = max(0, cos(e_i, e_j)) of the item embeddings (the paper's boundary refinement, with turn
embeddings standing in for attention keys).

Any ``transformers`` causal LM by name or path; loaded lazily on first use (CPU by default). Surprises
are cached per turn prefix, so online calls do not recompute them and give the offline values.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memsvc._types import Matrix
from memsvc.exceptions import ConfigError, MissingDependencyError, ModelError
from memsvc.segmenters.base import SegmentItem
from memsvc.segmenters.gap import GapScoringSegmenter

__all__ = ["SurpriseSegmenter", "modularity"]

_MODELS: dict[tuple[str, str], tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def _load(model: str, device: str) -> tuple[Any, Any]:
    with _LOCK:
        if (model, device) not in _MODELS:
            try:
                import torch  # noqa: F401
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as exc:
                raise MissingDependencyError("pip install transformers torch") from exc
            try:
                tok = AutoTokenizer.from_pretrained(model)
                lm = AutoModelForCausalLM.from_pretrained(model).to(device).eval()  # type: ignore[arg-type]
            except Exception as exc:
                raise ModelError(f"cannot load causal LM {model!r}: {exc}") from exc
            _MODELS[(model, device)] = (tok, lm)
        return _MODELS[(model, device)]


def modularity(adj: np.ndarray, labels: Sequence[int]) -> float:
    """Newman modularity of a partition of a weighted undirected graph."""
    k = adj.sum(1)
    two_m = float(k.sum())
    if two_m <= 0:
        return 0.0
    same = np.equal.outer(np.asarray(labels), np.asarray(labels))
    return float(((adj - np.outer(k, k) / two_m) * same).sum() / two_m)


@dataclass
class SurpriseSegmenter(GapScoringSegmenter):
    """Cuts before a turn whose LM surprise is ``threshold`` (gamma) standard deviations above the
    recent turns' surprise."""

    model: str = ""
    """Name or path of a causal LM (``transformers``)."""
    device: str = "cpu"
    window: int = 8
    """Previous turns whose surprise gives mu and sigma."""
    refine: int = 0
    """How far (turns) the modularity refinement may move a cut; 0: off."""
    max_tokens: int = 1024
    """Context kept before a turn (most recent tokens)."""
    keep_qa: bool = False
    peak: bool = False
    name: str = "surprise"
    _cache: OrderedDict[tuple[str, ...], float] = field(init=False, repr=False, default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("the surprise segmenter needs model (a causal LM name or path)")
        if self.window < 2:
            raise ConfigError("window must be >= 2")
        if self.refine < 0:
            raise ConfigError("refine must be >= 0")
        super().__post_init__()

    def default_threshold(self) -> float:
        return 1.0

    def default_lookahead(self) -> int:
        return 1 + self.refine

    def gap_score(self, emb: Matrix, items: Sequence[SegmentItem], j: int) -> float:
        lines = tuple(f"{it.speaker + ': ' if it.speaker else ''}{it.text}\n" for it in items)
        if j < 2:
            return float("-inf")  # too little history for mu and sigma
        past = [self._surprise(lines[: t + 1]) for t in range(max(1, j + 1 - self.window), j + 1)]
        mu, sigma = float(np.mean(past)), float(np.std(past))
        return (self._surprise(lines[: j + 2]) - mu) / max(sigma, 1e-3)

    def refine_cut(self, emb: Matrix, items: Sequence[SegmentItem], j: int) -> int:
        if not self.refine:
            return j
        adj = np.maximum(emb @ emb.T, 0.0)
        np.fill_diagonal(adj, 0.0)
        n = len(items)
        best, best_q = j, -np.inf
        for c in range(max(0, j - self.refine), min(n - 1, j + self.refine + 1)):
            q = modularity(adj, [0] * (c + 1) + [1] * (n - c - 1))
            if q > best_q + 1e-12:
                best, best_q = c, q
        return best

    def _surprise(self, lines: tuple[str, ...]) -> float:
        """Mean -log p of the last line's tokens given the lines before it (cached per prefix)."""
        if lines in self._cache:
            self._cache.move_to_end(lines)
            return self._cache[lines]
        import torch

        tok, lm = _load(self.model, self.device)
        ctx = tok("".join(lines[:-1]), add_special_tokens=False)["input_ids"] if len(lines) > 1 else []
        tgt = tok(lines[-1], add_special_tokens=False)["input_ids"][: self.max_tokens // 2]
        if tok.bos_token_id is not None:
            ctx = [tok.bos_token_id, *ctx]
        ctx = ctx[-(self.max_tokens - len(tgt)) :]
        if not tgt or not ctx:
            value = 0.0
        else:
            ids = torch.tensor([ctx + tgt], device=self.device)
            with torch.no_grad():
                logits = lm(input_ids=ids).logits[0, len(ctx) - 1 : -1].float()
            logp = torch.log_softmax(logits, dim=-1)
            value = float(-logp.gather(1, torch.tensor(tgt, device=self.device)[:, None]).mean())
        self._cache[lines] = value
        if len(self._cache) > 4096:
            self._cache.popitem(last=False)
        return value
