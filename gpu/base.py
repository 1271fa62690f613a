"""The KV-cache policy contract and the shared press machinery.

Hierarchy::

    KVPolicy (Protocol)                      compress one layer's KV after prefill
    └── BasePress                            hooks into a model as a context manager
        ├── ScorerPress                      score(...) -> top-k per KV head -> gather
        │   ├── StreamingLLMPress            policies/streaming_llm_policy.py
        │   ├── KnormPress                   policies/knorm_policy.py
        │   ├── SnapKVPress                  policies/snapkv_policy.py
        │   └── ExpectedAttentionPress       policies/expected_attention_policy.py
        └── KIVIPress                        policies/kivi_policy.py (quantizes, optionally after a scorer)

Shapes (transformers 5 cache layout): ``keys``/``values`` are ``[batch, kv_heads, seq, head_dim]``;
``hidden_states`` (the attention module's input, after its input norm) is ``[batch, seq, hidden]``;
``position_embeddings`` is the ``(cos, sin)`` pair the model gave the attention module, each
``[batch, seq, head_dim]``; scores are ``[batch, kv_heads, seq]`` (higher = keep).

A press is used in one of two ways:

* ``with press(model): model(input_ids=context, past_key_values=cache)`` — a forward hook on every
  attention module compresses that layer's KV right after the prefill forward has filled it (the hook is
  installed by the context manager and removed on exit; nothing is patched at import time). Later layers
  still see the uncompressed prefill, exactly as in an inference server that prunes per layer.
* :func:`memsvc.gpu.cache.compress_cache` applies it offline to a prefilled cache from the attention
  inputs captured during that prefill (the benchmark prefills once and tries many presses).

Compressed layers are :class:`memsvc.gpu.cache.CompressedLayer`: they keep the *logical* length (tokens
seen) apart from the *physical* one (tokens stored), so later tokens get the right RoPE positions and
causal mask without passing ``position_ids``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from memsvc.exceptions import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from memsvc.gpu.cache import CompressedLayer

__all__ = ["BasePress", "KVPolicy", "ScorerPress", "attention_modules", "project_queries"]


@runtime_checkable
class KVPolicy(Protocol):
    """Compresses the KV cache of one attention layer after prefill.

    Implementations are small dataclasses whose fields are their parameters; ``compression_ratio`` is the
    fraction of tokens removed (0.0 keeps everything, 0.75 keeps a quarter: a 4x smaller cache).
    """

    compression_ratio: float

    def compress_layer(
        self,
        module: nn.Module,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
    ) -> CompressedLayer:
        """Return the compressed cache layer for ``keys``/``values`` ``[batch, kv_heads, seq, head_dim]``.

        Args:
            module: the attention module (gives ``q_proj``, ``head_dim``, ``layer_idx``, ``config``).
            hidden_states: its input ``[batch, seq, hidden]`` for the prefill that produced the keys.
            keys: post-RoPE keys as cached.
            values: values as cached.
            position_embeddings: ``(cos, sin)`` for the prefill positions, each ``[batch, seq, head_dim]``.

        Returns:
            A layer holding at most ``int(seq * (1 - compression_ratio))`` tokens per KV head, with their
            original (logical) positions and ``logical_length == seq``.
        """
        ...

    def __call__(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        """Context manager: while active, every prefill through ``model`` compresses its cache."""
        ...


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention modules of a transformers decoder (they carry ``layer_idx`` and ``k_proj``)."""
    mods = [m for name, m in model.named_modules() if name.endswith("self_attn") and hasattr(m, "layer_idx")]
    if not mods:
        raise ConfigError(f"{type(model).__name__}: no self-attention modules with a layer_idx found")
    return mods


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE in the half-split layout transformers uses (pairs are ``i`` and ``i + head_dim/2``)."""
    import torch

    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1)


def project_queries(
    module: Any,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    """Queries ``[batch, heads, seq, head_dim]`` the module computes for ``hidden_states``.

    With ``position_embeddings`` (``cos``/``sin`` for the same positions) they are rotated (post-RoPE);
    with ``None`` they are pre-RoPE. Applies a per-head ``q_norm`` when the model has one (Qwen3, Gemma).
    """
    b, s, _ = hidden_states.shape
    q = module.q_proj(hidden_states).view(b, s, -1, module.head_dim)
    q_norm = getattr(module, "q_norm", None)
    if q_norm is not None:
        q = q_norm(q)
    q = q.transpose(1, 2)
    if position_embeddings is None:
        return q
    cos, sin = position_embeddings
    return _rotate(q, cos.to(q.dtype), sin.to(q.dtype))


@dataclass
class BasePress:
    """Installs itself on a model as forward hooks; subclasses implement ``compress_layer``."""

    compression_ratio: float = 0.0
    """Fraction of cached tokens to remove (0 <= ratio < 1)."""

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.compression_ratio) < 1.0:
            raise ConfigError(f"compression_ratio must be in [0, 1), got {self.compression_ratio}")

    def compress_layer(
        self,
        module: nn.Module,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
    ) -> CompressedLayer:
        raise NotImplementedError

    def n_kept(self, seq_len: int) -> int:
        """Tokens kept per KV head for a prefill of ``seq_len`` tokens (the budget; at least 1)."""
        return max(1, int(seq_len * (1.0 - self.compression_ratio)))

    def _hook(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        from transformers.cache_utils import DynamicLayer

        cache = kwargs.get("past_key_values")
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        if cache is None or hidden is None or module.layer_idx >= len(cache.layers):
            return
        layer = cache.layers[module.layer_idx]
        q_len = hidden.shape[1]
        # Only a fresh prefill of full attention: decode steps, suffixes on a warm cache and
        # sliding-window layers (already bounded) pass through untouched.
        if type(layer) is not DynamicLayer or q_len < 2 or layer.get_seq_length() != q_len:
            return
        if layer.keys is None or layer.values is None:
            return
        cache.layers[module.layer_idx] = self.compress_layer(
            module, hidden, layer.keys, layer.values, kwargs["position_embeddings"]
        )

    @contextlib.contextmanager
    def __call__(self, model: nn.Module) -> Iterator[None]:
        handles = [m.register_forward_hook(self._hook, with_kwargs=True) for m in attention_modules(model)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


@dataclass
class ScorerPress(BasePress):
    """Keeps the ``n_kept`` highest-scoring tokens of every KV head (kept in their original order)."""

    def score(
        self,
        module: nn.Module,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """Importance ``[batch, kv_heads, seq]`` of every cached token; higher is kept first."""
        raise NotImplementedError

    def compress_layer(
        self,
        module: nn.Module,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
    ) -> CompressedLayer:
        import torch

        with torch.no_grad():  # scoring never needs gradients (and may see inference-mode tensors)
            return self._prune(module, hidden_states, keys, values, position_embeddings)

    def _prune(
        self,
        module: nn.Module,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
    ) -> CompressedLayer:
        import torch

        from memsvc.gpu.cache import CompressedLayer

        b, h, n, d = keys.shape
        k = self.n_kept(n)
        if k >= n:
            positions = torch.arange(n, device=keys.device, dtype=torch.int32).expand(b, h, n)
            return CompressedLayer(keys, values, positions.contiguous(), logical_length=n)
        scores = self.score(module, hidden_states, keys, values, position_embeddings)
        if scores.shape != (b, h, n):
            raise ConfigError(f"{type(self).__name__}.score returned {tuple(scores.shape)}, want {(b, h, n)}")
        idx = scores.float().topk(k, dim=-1).indices.sort(dim=-1).values
        gather = idx.unsqueeze(-1).expand(b, h, k, d)
        return CompressedLayer(
            keys.gather(2, gather).contiguous(),
            values.gather(2, gather).contiguous(),
            idx.to(torch.int32),
            logical_length=n,
        )
