"""The REST service (FastAPI): ``create_app`` builds it, ``memsvc serve`` runs it with uvicorn.

    memsvc.api.app      create_app, health, readiness, metrics
    memsvc.api.routes   /v1 routes (one per Memory method) and /v1/admin key management
    memsvc.api.auth     bearer keys -> tenant, rate limits, thread pool, Idempotency-Key
    memsvc.api.errors   error bodies and the outer middleware
    memsvc.api.schemas  request/response models (the OpenAPI schema)
Needs the ``[server]`` extra.
"""

from __future__ import annotations

from memsvc.api.app import create_app
from memsvc.api.config import ApiConfig

__all__ = ["ApiConfig", "create_app"]
