"""StreamingLLM: attention sinks plus a recent window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from memsvc.exceptions import ConfigError
from memsvc.gpu.base import ScorerPress

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["StreamingLLMPress"]


@dataclass
class StreamingLLMPress(ScorerPress):
    """Keep the first ``n_sink`` tokens and the most recent ones; the window is the rest of the budget.

    Xiao et al., "Efficient Streaming Language Models with Attention Sinks" (ICLR 2024).
    """

    n_sink: int = 4
    """Initial tokens always kept (attention sinks)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_sink < 0:
            raise ConfigError(f"n_sink must be >= 0, got {self.n_sink}")

    def score(
        self,
        module: nn.Module,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        import torch

        b, h, n, _ = keys.shape
        s = torch.arange(n, device=keys.device, dtype=torch.float32)
        s[: self.n_sink] = float(n + 1)  # sinks outrank every recent token
        return s.expand(b, h, n)
