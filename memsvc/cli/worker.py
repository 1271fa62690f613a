"""``memsvc worker`` and ``memsvc beat``: the Celery consolidation worker and its one scheduler.

    memsvc worker [-Q consolidation,indexing] [-c 2] [--beat]     (= celery -A memsvc.worker worker)
    memsvc beat                                                   (= celery -A memsvc.worker beat)

Settings come from the environment (``MEMSVC_BROKER_URL``, ``MEMSVC_DATABASE_URL``, ...). Run exactly
one beat (or one worker with ``--beat``) per deployment.
"""

from __future__ import annotations

import typer

from memsvc.cli import app


@app.command()
def worker(
    queues: str = typer.Option(None, "--queues", "-Q", help="Queues to consume (default: consolidation,indexing)."),
    concurrency: int = typer.Option(None, "--concurrency", "-c", help="Worker processes (default: CPU count)."),
    beat: bool = typer.Option(False, "--beat", "-B", help="Also run the beat scheduler in this worker."),
    pool: str = typer.Option(None, help="Celery pool: prefork (default), threads, solo."),
    loglevel: str = typer.Option("INFO", help="Log level."),
) -> None:
    """Run a Celery worker for the consolidation jobs."""
    from memsvc.config import Settings
    from memsvc.worker import create_app

    settings = Settings()
    celery_app = create_app(settings)
    w = settings.worker
    argv = ["worker", f"--loglevel={loglevel}", "-Q", queues or f"{w.consolidation_queue},{w.indexing_queue}"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if pool:
        argv += ["--pool", pool]
    if beat:
        argv += ["--beat", "--schedule", str(settings.data_dir / "celerybeat-schedule")]
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    celery_app.worker_main(argv)


@app.command()
def beat(
    schedule: str = typer.Option(None, help="Beat state file (default: <data_dir>/celerybeat-schedule)."),
    loglevel: str = typer.Option("INFO", help="Log level."),
) -> None:
    """Run the beat scheduler (exactly one per deployment): queues the periodic consolidation jobs."""
    from memsvc.config import Settings
    from memsvc.worker import create_app

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    celery_app = create_app(settings)
    celery_app.start(["beat", f"--loglevel={loglevel}", "--schedule",
                      str(schedule or settings.data_dir / "celerybeat-schedule")])
