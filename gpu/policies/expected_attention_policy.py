"""ExpectedAttention: score keys by the attention *future* queries are expected to pay them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from memsvc.exceptions import ConfigError
from memsvc.gpu.base import ScorerPress, _rotate, project_queries

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["ExpectedAttentionPress"]


def _mean_future_rotation(
    position_embeddings: tuple[torch.Tensor, torch.Tensor], n_future: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` ``[batch, 1, head_dim]`` of the average RoPE rotation over the next ``n_future``
    positions, read off the prefill's own rotations (works for any linear-in-position RoPE variant)."""
    import torch

    cos, sin = position_embeddings
    last = torch.complex(cos[:, -1].float(), sin[:, -1].float())  # includes the RoPE attention scale
    prev = torch.complex(cos[:, -2].float(), sin[:, -2].float())
    step = torch.polar(torch.ones_like(last.real), torch.angle(last / prev))  # e^{i theta} per dim
    k = torch.arange(1, n_future + 1, device=cos.device, dtype=torch.float32).view(1, -1, 1)
    mean = (last.unsqueeze(1) * step.unsqueeze(1) ** k).mean(dim=1, keepdim=True)
    return mean.real, mean.imag


@dataclass
class ExpectedAttentionPress(ScorerPress):
    """Query-agnostic: model the next queries as Gaussian, score = E[softmax(q.k/sqrt(d))] * ||v||.

    Statistics are the mean ``mu`` and covariance ``Sigma`` of the *pre-RoPE* queries of the last
    ``n_queries`` prefill tokens, per query head, moved to the future by the average rotation ``R`` of the
    next ``n_future_positions`` positions. For a Gaussian query, ``E[exp(q.k/sqrt(d))] =
    exp(k.mu'/sqrt(d) + k'Sigma'k / 2d)`` with ``mu' = R mu``; the covariance is approximated as
    ``Sigma' = R Sigma R^T`` (exact for the mean, an approximation for the covariance, which under
    averaging over positions also picks up a rank-one term we drop). The expected logits are
    softmax-normalised over the prefix, averaged over the query heads of each KV group, and weighted by
    the value norm, since a token's contribution to the output scales with ``||v||``.

    Devoto et al., "Expected Attention: KV Cache Compression by Estimating Attention from Future Queries
    Distribution" (2025).
    """

    n_future_positions: int = 512
    """How far ahead the future queries are assumed to sit."""
    n_queries: int | None = None
    """Prefill tokens whose queries give the statistics (``None``: all of them)."""
    use_covariance: bool = True
    """Include the ``k'Sigma'k / 2d`` term (off: first moment only)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_future_positions < 1 or (self.n_queries is not None and self.n_queries < 2):
            raise ConfigError("n_future_positions must be >= 1 and n_queries >= 2 (or None)")

    def score(
        self,
        module: nn.Module,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        import torch

        b, h, n, d = keys.shape
        tail = hidden_states if self.n_queries is None else hidden_states[:, -self.n_queries :]
        q = project_queries(module, tail, None).float()  # pre-RoPE [b, H, m, d]
        mu = q.mean(dim=2, keepdim=True)  # [b, H, 1, d]
        cos, sin = _mean_future_rotation(position_embeddings, self.n_future_positions)
        mu = _rotate(mu, cos, sin)
        groups = q.shape[1] // h
        k = keys.float().repeat_interleave(groups, dim=1)  # [b, H, n, d]
        logits = torch.matmul(k, mu.transpose(-1, -2)).squeeze(-1) / d**0.5  # [b, H, n]
        if self.use_covariance and q.shape[2] > 1:
            centred = q - q.mean(dim=2, keepdim=True)
            sigma = centred.transpose(-1, -2) @ centred / (q.shape[2] - 1)  # [b, H, d, d]
            sigma = _rotate(sigma, cos, sin)  # Sigma R^T
            sigma = _rotate(sigma.transpose(-1, -2), cos, sin)  # R Sigma R^T
            logits = logits + torch.einsum("bhnd,bhde,bhne->bhn", k, sigma, k) / (2 * d)
        probs = logits.softmax(dim=-1).view(b, h, groups, n).mean(dim=2)
        return probs * values.float().norm(dim=-1)
