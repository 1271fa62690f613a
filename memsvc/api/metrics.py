"""Prometheus metrics for the REST service (``GET /metrics``, text exposition format 0.0.4).

Each app owns its registry (several apps in one test process never clash). Routes are labelled by
their template (``/v1/memories/{memory_id}``), never by raw path or user ids, so cardinality is bounded.
"""

from __future__ import annotations

from typing import Any

from memsvc.exceptions import MissingDependencyError

__all__ = ["Metrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Request counters, a latency histogram, in-flight requests and auth failures."""

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError as exc:  # pragma: no cover - part of the [server] extra
            raise MissingDependencyError("pip install 'memsvc[server]' (prometheus-client)") from exc
        self.registry = CollectorRegistry()
        self.requests = Counter("memsvc_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("memsvc_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], buckets=_BUCKETS, registry=self.registry)
        self.inflight = Gauge("memsvc_http_requests_in_flight", "HTTP requests being served",
                              registry=self.registry)
        self.auth_failures = Counter("memsvc_auth_failures", "Requests refused for a missing, unknown or revoked key",
                                     registry=self.registry)
        self.rate_limited = Counter("memsvc_rate_limited", "Requests refused by the per-key rate limit",
                                    registry=self.registry)
        self.idempotent_replays = Counter("memsvc_idempotent_replays", "Writes answered from a stored response",
                                          registry=self.registry)

    def in_flight(self, delta: int) -> None:
        self.inflight.inc(delta)

    def observe(self, scope: dict[str, Any], status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        self.requests.labels(method, path, str(status)).inc()
        self.latency.labels(method, path).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
