"""Migration 0003 (consolidation) up and down on SQLite, and the worker app's configuration."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect

from memsvc import Settings
from memsvc.stores.sql import migrate


def test_migration_0003_up_down_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url)
    eng = create_engine(url)
    insp = inspect(eng)
    assert {"unit_facts", "consolidation_state"} <= set(insp.get_table_names())
    assert "content_hash" in {c["name"] for c in insp.get_columns("units")}
    migrate(url, "0001", down=True)
    insp = inspect(eng)
    assert "unit_facts" not in insp.get_table_names()
    assert "content_hash" not in {c["name"] for c in insp.get_columns("units")}
    migrate(url)
    assert "unit_facts" in inspect(eng).get_table_names()
    eng.dispose()


def test_celery_app_from_settings() -> None:
    from memsvc.worker import app, create_app

    s = Settings(broker_url="amqp://guest@127.0.0.1:5672//", consolidation={"interval_s": 60},
                 worker={"soft_time_limit_s": 30, "time_limit_s": 40, "consolidation_queue": "c", "indexing_queue": "i"})
    capp = create_app(s)
    conf = capp.conf
    assert conf.broker_url.startswith("amqp://") and conf.result_backend == "rpc://"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (30, 40)
    assert conf.task_routes["memsvc.consolidate_user"] == {"queue": "c"}
    assert conf.task_routes["memsvc.reconcile"] == {"queue": "i"}
    assert conf.beat_schedule["consolidate"]["schedule"] == 60
    assert {e["task"] for e in conf.beat_schedule.values()} == {"memsvc.tick", "memsvc.reconcile"}
    assert app.main == "memsvc"  # `celery -A memsvc.worker` finds it
    assert conf.worker_concurrency == 1  # the embedded qdrant-edge shard: one pool process owns it
    served = create_app(Settings(vector={"backend": "qdrant", "url": "http://127.0.0.1:6333"},
                                 lexical={"backend": "memory"}))
    assert not served.conf.worker_concurrency  # a Qdrant server: celery's default (CPU count)
    assert create_app(Settings(worker={"concurrency": 3})).conf.worker_concurrency == 3
