"""A deliberately slow extractive summarizer, so a test can kill a worker in the middle of a job."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from memsvc.compressors.base import Summary, SummaryRequest
from memsvc.compressors.summary import ExtractiveSummarizer


@dataclass
class SlowSummarizer(ExtractiveSummarizer):
    delay_s: float = 0.25
    name: str = "extractive-slow"

    def summarize(self, requests: Sequence[SummaryRequest]) -> list[Summary]:
        time.sleep(self.delay_s * len(requests))
        return super().summarize(requests)
