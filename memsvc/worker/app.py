"""The Celery application, configured from ``Settings`` (broker: Redis or RabbitMQ).

    celery -A memsvc.worker worker -B -Q consolidation,indexing      # or: memsvc worker / memsvc beat

Reliability: ``acks_late`` with ``reject_on_worker_lost`` (a killed worker's task is delivered again;
the jobs are idempotent), prefetch 1, soft/hard time limits, retries only on retryable errors (in the
tasks). With the embedded qdrant-edge index (one process only) the pool defaults to one process, so
the plain ``celery -A memsvc.worker worker -B`` works on the embedded profile. Routing: consolidation
jobs on one queue, index maintenance on another. One beat schedule holds every periodic job, with
intervals from ``Settings.consolidation``.
"""

from __future__ import annotations

from typing import Any

from memsvc.config import Settings
from memsvc.exceptions import MissingDependencyError

__all__ = ["app", "beat_schedule", "create_app"]


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The whole periodic schedule (exactly one beat process should run it)."""
    c = settings.consolidation
    return {
        "consolidate": {"task": "memsvc.tick", "schedule": c.interval_s, "kwargs": {}},
        "decay": {"task": "memsvc.tick", "schedule": c.decay_interval_s,
                  "kwargs": {"jobs": ["decay", "recompress"], "all_users": True}},
        "reconcile": {"task": "memsvc.reconcile", "schedule": c.reconcile_interval_s, "kwargs": {}},
    }


def create_app(settings: Settings | None = None) -> Any:
    """A Celery app for ``settings`` (read from the environment when omitted)."""
    try:
        from celery import Celery
    except ImportError as exc:  # pragma: no cover - the worker extra
        raise MissingDependencyError("pip install memsvc[worker]") from exc
    settings = settings or Settings()
    w = settings.worker
    broker = settings.broker_url
    backend = w.result_backend or (broker if broker.startswith(("redis://", "rediss://")) else "rpc://")
    app = Celery("memsvc", include=["memsvc.worker.tasks"])
    app.conf.update(
        broker_url=broker,
        result_backend=backend,
        result_expires=3600,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=w.soft_time_limit_s,
        task_time_limit=w.time_limit_s,
        task_default_queue=w.consolidation_queue,
        task_routes={
            "memsvc.tick": {"queue": w.consolidation_queue},
            "memsvc.consolidate_user": {"queue": w.consolidation_queue},
            "memsvc.reconcile": {"queue": w.indexing_queue},
            "memsvc.index_pending": {"queue": w.indexing_queue},
        },
        broker_transport_options={"visibility_timeout": w.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
        timezone="UTC",
    )
    if w.concurrency:
        app.conf.worker_concurrency = w.concurrency
    elif "qdrant-edge" in (settings.vector.backend, settings.lexical.backend):
        # the embedded shard opens in one process only: one pool process owns it (``-c N`` still overrides;
        # with a Qdrant server, set ``worker.concurrency`` or ``-c``)
        app.conf.worker_concurrency = 1
    app.memsvc_settings = settings
    return app


app = create_app()
