"""Knorm: keep the keys with the smallest L2 norm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from memsvc.gpu.base import ScorerPress

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["KnormPress"]


@dataclass
class KnormPress(ScorerPress):
    """Score = -||k||: low-norm keys tend to draw the most attention in trained LLMs.

    Devoto et al., "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression" (EMNLP 2024).
    """

    def score(
        self,
        module: nn.Module,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        return -keys.float().norm(dim=-1)
