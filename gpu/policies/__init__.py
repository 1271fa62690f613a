"""KV-cache presses, one per module, registered by name in ``PRESSES``.

    from memsvc.gpu.policies import PRESSES
    press = PRESSES.create("snapkv", compression_ratio=0.75)
    with press(model):
        model(input_ids=ids, past_key_values=cache)

Importing this package imports torch and transformers (``import memsvc.gpu`` does not).
"""

from __future__ import annotations

from memsvc.gpu.base import BasePress, KVPolicy, ScorerPress
from memsvc.gpu.policies.expected_attention_policy import ExpectedAttentionPress
from memsvc.gpu.policies.kivi_policy import KIVIPress, QuantizedLayer
from memsvc.gpu.policies.knorm_policy import KnormPress
from memsvc.gpu.policies.snapkv_policy import SnapKVPress
from memsvc.gpu.policies.streaming_llm_policy import StreamingLLMPress
from memsvc.registry import Registry

__all__ = [
    "PRESSES",
    "BasePress",
    "ExpectedAttentionPress",
    "KIVIPress",
    "KVPolicy",
    "KnormPress",
    "QuantizedLayer",
    "ScorerPress",
    "SnapKVPress",
    "StreamingLLMPress",
]

PRESSES: Registry[KVPolicy] = Registry("kv press")
PRESSES.register("streaming_llm")(StreamingLLMPress)
PRESSES.register("knorm")(KnormPress)
PRESSES.register("snapkv")(SnapKVPress)
PRESSES.register("expected_attention")(ExpectedAttentionPress)
PRESSES.register("kivi")(KIVIPress)
