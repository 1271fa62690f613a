"""memsvc.gpu: an LLM that answers from memory with a compressed, reusable KV cache.

Modules (each imports torch/transformers; this package itself does not, names resolve lazily)::

    base.py            KVPolicy protocol, BasePress (hooks), ScorerPress (top-k + gather)
    cache.py           CompressedLayer (logical vs physical length), compress_cache, kv_bytes
    policies/          StreamingLLM, Knorm, SnapKV, ExpectedAttention, KIVI presses + PRESSES registry
    episode_store.py   EpisodeKVStore: prefill once, persist (safetensors), reuse, invalidate
    kv_files.py        the store's torch-free half + EpisodeKVInvalidator (the service's unit listener)
    llm.py             LLM: any HF causal LM, device auto, press, streaming answers from memory
    remote.py          RemoteLLM: the same chat interface over an external OpenAI-compatible server
    runtime.py         answerer_from_config / press_from_config: what Settings.gpu describes
    openai_api.py      create_openai_router: OpenAI-compatible /v1/chat/completions
    video.py           dycoke_merge: temporal token merging of frame tokens
    toy.py             RecallTask + a tiny associative-recall Llama for offline benchmarks/tests

Install the extra with ``pip install memsvc[gpu]``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "PRESSES",
    "BasePress",
    "CompressedLayer",
    "EpisodeKVInvalidator",
    "EpisodeKVStore",
    "ExpectedAttentionPress",
    "KIVIPress",
    "KVPolicy",
    "KnormPress",
    "LLM",
    "RemoteLLM",
    "ScorerPress",
    "SnapKVPress",
    "StreamingLLMPress",
    "answerer_from_config",
    "compress_cache",
    "create_openai_router",
    "dycoke_merge",
    "kv_bytes",
    "press_from_config",
]

_WHERE = {
    "PRESSES": "policies",
    "BasePress": "base",
    "KVPolicy": "base",
    "ScorerPress": "base",
    "CompressedLayer": "cache",
    "compress_cache": "cache",
    "kv_bytes": "cache",
    "EpisodeKVStore": "episode_store",
    "EpisodeKVInvalidator": "kv_files",
    "RemoteLLM": "remote",
    "answerer_from_config": "runtime",
    "press_from_config": "runtime",
    "LLM": "llm",
    "create_openai_router": "openai_api",
    "dycoke_merge": "video",
    "ExpectedAttentionPress": "policies",
    "KIVIPress": "policies",
    "KnormPress": "policies",
    "SnapKVPress": "policies",
    "StreamingLLMPress": "policies",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'memsvc.gpu' has no attribute {name!r}")
    try:
        module = importlib.import_module(f"memsvc.gpu.{_WHERE[name]}")
    except ImportError as exc:
        if exc.name in ("torch", "transformers", "safetensors", "fastapi", "httpx"):
            from memsvc.exceptions import MissingDependencyError

            raise MissingDependencyError(f"memsvc.gpu.{name} needs: pip install memsvc[gpu]") from exc
        raise
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(__all__)
