"""Prompt compressors: ``selfinfo`` (offline default), ``llmlingua2`` (extra), ``none``."""

from __future__ import annotations

from memsvc.compressors.prompt.llmlingua2 import LLMLingua2Compressor
from memsvc.compressors.prompt.protect import protected_tokens
from memsvc.compressors.prompt.selfinfo import SelfInfoCompressor
from memsvc.compressors.prompt.token_drop import TokenDropCompressor

__all__ = ["LLMLingua2Compressor", "SelfInfoCompressor", "TokenDropCompressor", "protected_tokens"]
