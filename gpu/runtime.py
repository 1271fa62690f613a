"""The answering runtime ``Settings.gpu`` describes: a local :class:`~memsvc.gpu.llm.LLM` with its press,
KV quantization and episode store, or a :class:`~memsvc.gpu.remote.RemoteLLM` when ``base_url`` is set.

    from memsvc.gpu.runtime import answerer_from_config
    llm = answerer_from_config(settings.gpu)      # None when no model is configured

The REST app (``/v1/chat/completions``) and ``memsvc bench kv`` build theirs here.
"""

from __future__ import annotations

from typing import Any

from memsvc.config import GPUConfig

__all__ = ["answerer_from_config", "press_from_config"]


def press_from_config(cfg: GPUConfig) -> Any:
    """The configured press: ``press`` at ``compression_ratio`` (plus ``press_options``), wrapped in
    KIVI quantization when ``kv_bits`` is set; ``None`` for the full cache."""
    from memsvc.gpu.policies import PRESSES, KIVIPress

    inner = None
    if cfg.press:
        inner = PRESSES.create(cfg.press, compression_ratio=cfg.compression_ratio, **cfg.press_options)
    if cfg.kv_bits is not None:
        return KIVIPress(nbits=cfg.kv_bits, press=inner)
    return inner


def answerer_from_config(cfg: GPUConfig) -> Any:
    """``RemoteLLM`` (``base_url`` set), ``LLM`` (``model`` set) or ``None``."""
    if not cfg.model:
        return None
    extra = {"system_prompt": cfg.system_prompt} if cfg.system_prompt else {}
    if cfg.base_url:
        from memsvc.gpu.remote import RemoteLLM

        key = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
        return RemoteLLM(cfg.base_url, cfg.model, api_key=key, timeout_s=cfg.timeout_s, **extra)
    from memsvc.gpu.llm import LLM

    return LLM(
        cfg.model,
        device=cfg.device,
        dtype=cfg.dtype,
        press=press_from_config(cfg),
        episode_store=cfg.episode_kv_dir,
        revision=cfg.revision,
        query_aware=cfg.query_aware,
        max_new_tokens=cfg.max_new_tokens,
        **extra,
    )
