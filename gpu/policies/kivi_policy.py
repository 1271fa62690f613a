"""KIVI-style KV quantization: keys per channel, values per token, recent tokens in full precision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from memsvc.exceptions import ConfigError
from memsvc.gpu.base import BasePress, KVPolicy
from memsvc.gpu.cache import CompressedLayer

if TYPE_CHECKING:
    from torch import nn

__all__ = ["KIVIPress", "QuantizedLayer", "dequantize", "quantize"]


def quantize(x: torch.Tensor, nbits: int, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric min/max quantization of ``x`` with one (scale, min) per slice along ``dim``.

    Returns ``(codes, scale, minimum)``: codes are uint8 with ``8 // nbits`` values packed per byte along
    the last dimension; ``scale``/``minimum`` keep ``dim`` with size 1 and ``x``'s dtype.
    """
    lo = x.amin(dim=dim, keepdim=True)
    hi = x.amax(dim=dim, keepdim=True)
    levels = (1 << nbits) - 1
    scale = ((hi - lo) / levels).clamp(min=torch.finfo(x.dtype).tiny)
    codes = ((x - lo) / scale).round().clamp(0, levels).to(torch.uint8)
    per_byte = 8 // nbits
    if per_byte > 1:
        codes = codes.view(*codes.shape[:-1], -1, per_byte)
        shifts = torch.arange(0, 8, nbits, device=x.device, dtype=torch.uint8)
        codes = (codes << shifts).sum(dim=-1, dtype=torch.uint8)
    return codes, scale, lo


def dequantize(codes: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor, nbits: int) -> torch.Tensor:
    """Inverse of :func:`quantize` (up to rounding)."""
    per_byte = 8 // nbits
    if per_byte > 1:
        shifts = torch.arange(0, 8, nbits, device=codes.device, dtype=torch.uint8)
        codes = ((codes.unsqueeze(-1) >> shifts) & ((1 << nbits) - 1)).flatten(-2)
    return codes.to(scale.dtype) * scale + minimum


class QuantizedLayer(CompressedLayer):
    """Quantized tokens (in groups of ``group_size`` along the sequence for keys' per-channel scales)
    followed by a full-precision tail of the newest tokens (``self.keys``/``self.values``); the tail is
    folded into the quantized part a group at a time once it exceeds ``residual_length + group_size``.
    """

    kind = "kivi"

    def __init__(
        self,
        keys: torch.Tensor,
        values: torch.Tensor,
        positions: torch.Tensor,
        logical_length: int,
        nbits: int = 4,
        group_size: int = 32,
        residual_length: int = 32,
    ):
        super().__init__(keys[..., :0, :], values[..., :0, :], positions, logical_length)
        self.nbits, self.group_size, self.residual_length = nbits, group_size, residual_length
        self.q: dict[str, torch.Tensor] = {}
        self.n_quantized = 0
        self.keys, self.values = keys, values
        self._flush()

    def _flush(self) -> None:
        tail = self.keys.shape[-2]
        n = (tail - self.residual_length) // self.group_size * self.group_size
        if n <= 0:
            return
        k, v = self.keys[..., :n, :], self.values[..., :n, :]
        b, h, _, d = k.shape
        # keys: per channel, one scale per group of tokens; values: per token, one scale per token
        kc, ks, km = quantize(
            k.reshape(b, h, n // self.group_size, self.group_size, d).transpose(-1, -2), self.nbits, dim=-1
        )
        vc, vs, vm = quantize(v, self.nbits, dim=-1)
        new = {"k_codes": kc, "k_scale": ks, "k_min": km, "v_codes": vc, "v_scale": vs, "v_min": vm}
        for name, t in new.items():
            self.q[name] = torch.cat([self.q[name], t], dim=2) if name in self.q else t
        self.n_quantized += n
        self.keys, self.values = self.keys[..., n:, :].contiguous(), self.values[..., n:, :].contiguous()

    def _dequantized(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.q:
            return self.keys, self.values
        b, h, g = self.q["k_codes"].shape[:3]
        k = dequantize(self.q["k_codes"], self.q["k_scale"], self.q["k_min"], self.nbits)
        k = k.transpose(-1, -2).reshape(b, h, g * self.group_size, -1)
        v = dequantize(self.q["v_codes"], self.q["v_scale"], self.q["v_min"], self.nbits)
        return torch.cat([k, self.keys], dim=-2), torch.cat([v, self.values], dim=-2)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._append_positions(key_states.shape[-2], key_states)
        self.keys = torch.cat([self.keys, key_states], dim=-2)
        self.values = torch.cat([self.values, value_states], dim=-2)
        full = self._dequantized()
        if self.keys.shape[-2] >= self.residual_length + self.group_size:
            self._flush()
        return full

    def physical_length(self) -> int:
        return self.n_quantized + int(self.keys.shape[-2])

    def crop(self, tokens_to_remove: int) -> None:
        if -tokens_to_remove > self.keys.shape[-2]:
            raise ValueError("cannot crop into the quantized part of the cache")
        super().crop(tokens_to_remove)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        self.q = {k: t.index_select(0, beam_idx.to(t.device)) for k, t in self.q.items()}

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self.q = {k: t.repeat_interleave(repeats, dim=0) for k, t in self.q.items()}

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        self.q = {k: t[indices, ...] for k, t in self.q.items()}

    def nbytes(self) -> int:
        return super().nbytes() + sum(int(t.nbytes) for t in self.q.values())

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {**super().to_tensors(), **{f"q.{k}": t for k, t in self.q.items()}}

    def to_meta(self) -> dict[str, Any]:
        return {
            **super().to_meta(),
            "nbits": self.nbits,
            "group_size": self.group_size,
            "residual_length": self.residual_length,
            "n_quantized": self.n_quantized,
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> QuantizedLayer:
        layer = cls(
            tensors["keys"],
            tensors["values"],
            tensors["positions"],
            meta["logical_length"],
            nbits=meta["nbits"],
            group_size=meta["group_size"],
            residual_length=meta["residual_length"],
        )
        layer.q = {k[2:]: t for k, t in tensors.items() if k.startswith("q.")}
        layer.n_quantized = int(meta["n_quantized"])
        return layer


@dataclass
class KIVIPress(BasePress):
    """Quantize the cache to ``nbits`` (keys per channel in groups of ``group_size`` tokens, values per
    token), keeping the newest ``residual_length`` tokens in full precision; optionally prune first with
    ``press`` (then ``compression_ratio`` is that press's). Memory vs 16-bit KV ~ 16/nbits (plus scales).

    Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache" (ICML 2024).
    transformers' own ``QuantizedCache`` needs optimum-quanto or hqq for integer formats (its offline
    ``fp8`` backend is per-tensor); this layer is self-contained and composes with pruning presses.
    """

    nbits: int = 4
    """Bits per stored number: 2, 4 or 8."""
    group_size: int = 32
    """Tokens sharing a key scale (per channel)."""
    residual_length: int = 32
    """Newest tokens kept in full precision."""
    press: KVPolicy | None = None
    """Optional pruning press applied before quantization."""

    def __post_init__(self) -> None:
        if self.press is not None:
            self.compression_ratio = self.press.compression_ratio
        super().__post_init__()
        if self.nbits not in (2, 4, 8) or self.group_size < 1 or self.residual_length < 0:
            raise ConfigError("nbits must be 2, 4 or 8; group_size >= 1; residual_length >= 0")

    def compress_layer(
        self,
        module: nn.Module,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
    ) -> CompressedLayer:
        n = keys.shape[-2]
        with torch.no_grad():
            return self._quantize(module, hidden_states, keys, values, position_embeddings, n)

    def _quantize(
        self,
        module: nn.Module,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        n: int,
    ) -> CompressedLayer:
        if self.press is not None:
            base = self.press.compress_layer(module, hidden_states, keys, values, position_embeddings)
            keys, values, positions = base.keys, base.values, base.positions
        else:
            b, h = keys.shape[:2]
            positions = torch.arange(n, device=keys.device, dtype=torch.int32).expand(b, h, n).contiguous()
        return QuantizedLayer(
            keys,
            values,
            positions,
            n,
            nbits=self.nbits,
            group_size=self.group_size,
            residual_length=self.residual_length,
        )
