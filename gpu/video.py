"""DyCoke-style temporal token merging for video frame tokens before they enter the LLM.

Frames arrive as visual tokens ``[frames, tokens, dim]`` (e.g. a ViT's patch tokens per frame). Nearby
frames repeat most of their content, so within each window of ``window`` frames the first frame is an
anchor kept whole and every other frame keeps only its ``ceil((1 - prune_ratio) * tokens)`` tokens least
similar (cosine, same token position) to a reference frame: the 2nd and 4th frames are compared with the
frame just before them, the 3rd with the anchor (the pairing of DyCoke's temporal stage). Tokens stay in
temporal order and carry their (frame, position) origin so the caller can add position information.

Tao et al., "DyCoke: Dynamic Compression of Tokens for Fast Video Large Language Models" (CVPR 2025):
windows of 4, K = 0.7. (Its second stage, re-selecting visual KV at decode time when the attention
pattern shifts, is a KV press concern, not done here.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from memsvc.exceptions import ConfigError

__all__ = ["MergedFrames", "dycoke_merge"]


@dataclass
class MergedFrames:
    """Tokens kept by :func:`dycoke_merge`, in temporal then positional order."""

    tokens: torch.Tensor
    """``[kept, dim]``."""
    frame_index: torch.Tensor
    """``[kept]`` frame each token came from."""
    token_index: torch.Tensor
    """``[kept]`` position of the token within its frame."""
    n_input: int
    """``frames * tokens`` before merging."""

    @property
    def keep_ratio(self) -> float:
        """Fraction of the input tokens kept."""
        return self.tokens.shape[0] / self.n_input

    def per_frame(self) -> list[torch.Tensor]:
        """The kept tokens of each frame (``[n_i, dim]``), in frame order."""
        n_frames = int(self.frame_index.max()) + 1 if self.frame_index.numel() else 0
        return [self.tokens[self.frame_index == f] for f in range(n_frames)]


def dycoke_merge(frames: torch.Tensor, window: int = 4, prune_ratio: float = 0.7) -> MergedFrames:
    """Drop temporally redundant tokens from ``frames`` ``[frames, tokens, dim]`` (see module docstring)."""
    if frames.dim() != 3:
        raise ConfigError(f"frames must be [frames, tokens, dim], got shape {tuple(frames.shape)}")
    if window < 1 or not 0.0 <= prune_ratio < 1.0:
        raise ConfigError("window must be >= 1 and prune_ratio in [0, 1)")
    n_frames, n_tok, _ = frames.shape
    keep = max(1, math.ceil((1.0 - prune_ratio) * n_tok))
    unit = torch.nn.functional.normalize(frames.float(), dim=-1)
    all_pos = torch.arange(n_tok, device=frames.device)
    parts, f_idx, t_idx = [], [], []
    for f in range(n_frames):
        offset = f % window
        if offset == 0:
            pos = all_pos
        else:
            ref = f - 1 if offset % 2 == 1 else f - offset  # 2nd/4th vs previous, 3rd vs anchor
            sim = (unit[f] * unit[ref]).sum(-1)
            pos = sim.topk(keep, largest=False).indices.sort().values
        parts.append(frames[f, pos])
        f_idx.append(torch.full_like(pos, f))
        t_idx.append(pos)
    return MergedFrames(torch.cat(parts), torch.cat(f_idx), torch.cat(t_idx), n_frames * n_tok)
