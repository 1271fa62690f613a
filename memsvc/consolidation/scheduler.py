"""Embedded profile: the consolidation jobs on a schedule inside the process (no broker, no server).

``Memory`` starts one ``EmbeddedScheduler`` when ``Settings.consolidation.embedded_schedule`` is on;
it runs ``consolidate`` every ``interval_s`` (decay every ``decay_interval_s``) on a daemon thread and
stops with ``Memory.close()``. Errors are logged, never raised into the application.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from memsvc.consolidation.runner import DEFAULT_JOBS, consolidate

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["EmbeddedScheduler"]

log = logging.getLogger("memsvc.consolidation")


class EmbeddedScheduler:
    """A daemon thread running the consolidation jobs periodically."""

    def __init__(self, svc: MemoryService) -> None:
        self.svc = svc
        self.cfg = svc.settings.consolidation
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memsvc-consolidation", daemon=True)
        self.runs = 0
        self.last_error: BaseException | None = None

    def start(self) -> EmbeddedScheduler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        last_decay = time.monotonic()
        while not self._stop.wait(self.cfg.interval_s):
            jobs = [j for j in DEFAULT_JOBS if j not in ("decay", "recompress")]
            if time.monotonic() - last_decay >= self.cfg.decay_interval_s:
                jobs, last_decay = list(DEFAULT_JOBS), time.monotonic()
            try:
                consolidate(self.svc, jobs=jobs)
                self.runs += 1
            except Exception as exc:  # noqa: BLE001 - a background job must not kill the application
                self.last_error = exc
                log.exception("embedded consolidation failed")

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the thread to stop and wait for a running pass to finish."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
