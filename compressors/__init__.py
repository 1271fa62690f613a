"""Compressors: prompt compression (``PROMPT_COMPRESSORS``, chosen by name) and summarizers
(``compressors.summary``, used by consolidation)."""

from __future__ import annotations

from memsvc.compressors.base import (
    Compressed,
    IdentityCompressor,
    Passage,
    PromptCompressor,
    Summarizer,
    Summary,
    SummaryRequest,
)
from memsvc.compressors.denoise import Denoiser
from memsvc.compressors.prompt import LLMLingua2Compressor, SelfInfoCompressor
from memsvc.registry import Registry

PROMPT_COMPRESSORS: Registry[PromptCompressor] = Registry("prompt compressor")
PROMPT_COMPRESSORS.register("none")(IdentityCompressor)
PROMPT_COMPRESSORS.register("selfinfo")(SelfInfoCompressor)
PROMPT_COMPRESSORS.register("llmlingua2")(LLMLingua2Compressor)

__all__ = [
    "PROMPT_COMPRESSORS",
    "Compressed",
    "Denoiser",
    "IdentityCompressor",
    "LLMLingua2Compressor",
    "Passage",
    "PromptCompressor",
    "SelfInfoCompressor",
    "Summarizer",
    "Summary",
    "SummaryRequest",
]
