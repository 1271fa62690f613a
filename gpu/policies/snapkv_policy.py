"""SnapKV: what the last prompt tokens attend to is what later queries will attend to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memsvc.exceptions import ConfigError
from memsvc.gpu.base import ScorerPress, project_queries

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["SnapKVPress", "window_attention"]


def window_attention(
    module: Any,
    hidden_states: torch.Tensor,
    keys: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    window: int,
) -> torch.Tensor:
    """Softmax attention ``[batch, heads, window, seq]`` of the last ``window`` queries (causal, fp32)."""
    import torch

    n = keys.shape[-2]
    cos, sin = position_embeddings
    q = project_queries(module, hidden_states[:, -window:], (cos[:, -window:], sin[:, -window:]))
    groups = q.shape[1] // keys.shape[1]
    k = keys.repeat_interleave(groups, dim=1)
    logits = torch.matmul(q.float(), k.float().transpose(-1, -2)) / module.head_dim**0.5
    # query i of the window sits at position n - window + i and may not see later keys
    q_pos = torch.arange(n - window, n, device=keys.device).unsqueeze(-1)
    future = torch.arange(n, device=keys.device).unsqueeze(0) > q_pos
    logits = logits.masked_fill(future, float("-inf"))
    return logits.softmax(dim=-1)


@dataclass
class SnapKVPress(ScorerPress):
    """Score a prefix token by the attention the last ``window_size`` prompt tokens pay it, smoothed by
    an average pool and averaged over the query heads of each KV group; the window itself is always kept
    (when the budget allows it).

    Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation" (NeurIPS 2024).
    """

    window_size: int = 64
    """Observation window: the last tokens of the prompt (put the question there when it is known)."""
    kernel_size: int = 5
    """Average-pool width over neighbouring positions (odd)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_size < 1 or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError("window_size must be >= 1 and kernel_size odd and >= 1")

    def score(
        self,
        module: nn.Module,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        b, h, n, _ = keys.shape
        w = min(self.window_size, n - 1)
        attn = window_attention(module, hidden_states, keys, position_embeddings, w)[..., : n - w]
        s = attn.mean(dim=-2)  # [b, heads, n - w]
        s = F.avg_pool1d(
            s, self.kernel_size, stride=1, padding=self.kernel_size // 2, count_include_pad=False
        )
        s = s.view(b, h, -1, n - w).mean(dim=2)  # GQA: average the query heads sharing a KV head
        window = torch.full((b, h, w), float("inf"), device=s.device, dtype=s.dtype)
        return torch.cat([s, window], dim=-1)
