"""Cache layers that remember logical positions after compression, and helpers around them.

Hierarchy::

    transformers DynamicLayer
    └── CompressedLayer          pruned KV + kept positions; logical length != physical length
        └── QuantizedLayer       policies/kivi_policy.py: int8/int4/int2 storage + full-precision tail

Why a layer subclass: transformers 5 derives the next token's position (and the causal mask's query
offset) from ``cache.get_seq_length()``. After pruning the stored length is smaller than the number of
tokens the model has seen, so ``get_seq_length`` here returns the *logical* length and
``get_mask_sizes`` reports the stored length plus an offset — the same trick transformers'
``DynamicSlidingWindowLayer`` uses. No ``position_ids`` need to be passed, ``generate`` works, and a
multi-token suffix gets a correct causal mask. A 2-D padding ``attention_mask`` cannot describe per-head
pruned caches: batch only equal-length prompts (or batch size 1) after compression.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from memsvc.gpu.base import attention_modules

if TYPE_CHECKING:
    from torch import nn

    from memsvc.gpu.base import KVPolicy

__all__ = [
    "CompressedLayer",
    "capture_attention_inputs",
    "compress_cache",
    "kv_bytes",
    "layer_from_tensors",
    "make_cache",
]

LAYER_KINDS: dict[str, type[CompressedLayer]] = {}
"""Serializable layer classes by ``kind`` (filled by ``__init_subclass__``)."""


class CompressedLayer(DynamicLayer):
    """A full-attention cache layer holding a subset of the tokens seen, at their original positions.

    ``positions`` ``[batch, kv_heads, stored]`` (int32) are the logical positions of the stored tokens
    (sorted per head); ``logical_length`` counts every token seen. New tokens are appended in full.
    """

    kind = "pruned"
    keys: torch.Tensor
    values: torch.Tensor

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LAYER_KINDS[cls.kind] = cls

    def __init__(
        self, keys: torch.Tensor, values: torch.Tensor, positions: torch.Tensor, logical_length: int
    ):
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values
        self.positions = positions
        self.logical_length = int(logical_length)

    def physical_length(self) -> int:
        """Tokens actually stored per head."""
        return int(self.keys.shape[-2])

    def _append_positions(self, n: int, like: torch.Tensor) -> None:
        b, h = like.shape[0], like.shape[1]
        new = torch.arange(self.logical_length, self.logical_length + n, device=self.positions.device)
        self.positions = torch.cat([self.positions, new.to(torch.int32).expand(b, h, n)], dim=-1)
        self.logical_length += n

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._append_positions(key_states.shape[-2], key_states)
        return super().update(key_states, value_states)

    def get_seq_length(self) -> int:
        return self.logical_length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        stored = self.physical_length()
        return stored + query_length, self.logical_length - stored

    def crop(self, tokens_to_remove: int) -> None:
        # Only the newest tokens can be cropped: they are stored in full at the end.
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative count (tokens to remove from the end)")
        n = -tokens_to_remove
        if n == 0:
            return
        self.keys, self.values = self.keys[..., :-n, :], self.values[..., :-n, :]
        self.positions = self.positions[..., :-n]
        self.logical_length -= n

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        self.positions = self.positions.index_select(0, beam_idx.to(self.positions.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self.positions = self.positions.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        self.positions = self.positions[indices, ...]

    def nbytes(self) -> int:
        """Bytes of KV storage (keys, values and any quantization scales; not the position index)."""
        return int(self.keys.nbytes + self.values.nbytes)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Everything needed to rebuild the layer, for safetensors."""
        return {"keys": self.keys, "values": self.values, "positions": self.positions}

    def to_meta(self) -> dict[str, Any]:
        """JSON-able parameters needed to rebuild the layer."""
        return {"kind": self.kind, "logical_length": self.logical_length}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> CompressedLayer:
        """Inverse of ``to_tensors``/``to_meta``."""
        return cls(tensors["keys"], tensors["values"], tensors["positions"], meta["logical_length"])


LAYER_KINDS[CompressedLayer.kind] = CompressedLayer


def layer_from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> CompressedLayer:
    """Rebuild a serialized layer of any registered kind."""
    return LAYER_KINDS[meta["kind"]].from_tensors(tensors, meta)


def as_compressed(layer: Any) -> CompressedLayer:
    """View a plain full layer as a ``CompressedLayer`` that keeps everything (for uniform storage)."""
    if isinstance(layer, CompressedLayer):
        return layer
    b, h, n, _ = layer.keys.shape
    pos = torch.arange(n, device=layer.keys.device, dtype=torch.int32).expand(b, h, n).contiguous()
    return CompressedLayer(layer.keys, layer.values, pos, logical_length=n)


def make_cache(layers: list[Any]) -> DynamicCache:
    """A ``DynamicCache`` over ready-made layers."""
    cache = DynamicCache()
    cache.layers = list(layers)
    return cache


def kv_bytes(cache: DynamicCache) -> int:
    """Bytes the cache's KV storage takes (keys, values, quantization scales), over all layers."""
    total = 0
    for layer in cache.layers:
        if isinstance(layer, CompressedLayer):
            total += layer.nbytes()
        else:
            k, v = getattr(layer, "keys", None), getattr(layer, "values", None)
            if k is not None and v is not None and k.numel():
                total += int(k.nbytes + v.nbytes)
    return total


Captured = dict[int, tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]


@contextlib.contextmanager
def capture_attention_inputs(model: nn.Module) -> Iterator[Captured]:
    """Record every attention module's input and ``(cos, sin)`` during the next forward (by layer)."""
    captured: Captured = {}

    def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        captured[module.layer_idx] = (cast(torch.Tensor, hidden), kwargs["position_embeddings"])

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in attention_modules(model)]
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def compress_cache(
    model: nn.Module, cache: DynamicCache, press: KVPolicy, captured: Captured
) -> DynamicCache:
    """A new cache: ``press`` applied to every full-attention layer of a prefilled ``cache``.

    ``captured`` comes from :func:`capture_attention_inputs` around the prefill that filled ``cache``.
    The input cache is not modified (compressed layers hold new tensors; untouched layers are shared).
    Equivalent to prefilling under ``with press(model):``, since pruning layer ``l`` never changes what
    later layers compute during that prefill.
    """
    mods = {m.layer_idx: m for m in attention_modules(model)}
    layers: list[Any] = []
    for i, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer and i in captured:
            hidden, pos_emb = captured[i]
            layers.append(press.compress_layer(mods[i], hidden, layer.keys, layer.values, pos_emb))
        else:
            layers.append(layer)
    return make_cache(layers)
