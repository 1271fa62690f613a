"""Summarizers, chosen by name: ``extractive`` (offline default) or ``langchain`` (a chat model)."""

from __future__ import annotations

from typing import Any

from memsvc.compressors.base import Summarizer
from memsvc.compressors.summary.extractive import ExtractiveSummarizer, denoise
from memsvc.registry import Registry

SUMMARIZERS: Registry[Summarizer] = Registry("summarizer")
SUMMARIZERS.register("extractive")(ExtractiveSummarizer)


@SUMMARIZERS.register("langchain")
def _langchain(**options: Any) -> Summarizer:
    from memsvc.compressors.summary.langchain import ChatModelSummarizer

    return ChatModelSummarizer(**options)


__all__ = ["SUMMARIZERS", "ExtractiveSummarizer", "Summarizer", "denoise"]
