"""Celery app for the two-process lock test: memsvc's own worker app, plus a job that records when it
ran (user, process, start, end) in the file named by ``MEMSVC_TEST_SPAN_LOG``."""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from memsvc.consolidation import JOBS
from memsvc.worker import app

__all__ = ["app"]


def _span(svc: Any, scope: Any, now: datetime) -> dict[str, int]:
    t0 = time.time()
    time.sleep(float(os.environ.get("MEMSVC_TEST_SPAN_S", "0.5")))
    with open(os.environ["MEMSVC_TEST_SPAN_LOG"], "a", encoding="utf-8") as f:  # one short append per span
        f.write(f"{scope.user} {os.getpid()} {t0:.6f} {time.time():.6f}\n")
    return {"span": 1}


JOBS["span"] = _span
