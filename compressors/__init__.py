"""Compressors: summarizers (``compressors.summary``); prompt and embedding compression plug in here."""

from __future__ import annotations

from memsvc.compressors.base import Passage, Summarizer, Summary, SummaryRequest

__all__ = ["Passage", "Summarizer", "Summary", "SummaryRequest"]
