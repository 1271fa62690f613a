"""Celery workers for consolidation: ``celery -A memsvc.worker worker -B`` or ``memsvc worker``.

Needs the ``worker`` extra (``pip install memsvc[worker]``). ``app`` is configured from the
environment (``MEMSVC_*``); ``create_app(settings)`` builds another one.
"""

from __future__ import annotations

from memsvc.worker.app import app, beat_schedule, create_app

celery = app

__all__ = ["app", "beat_schedule", "celery", "create_app"]
