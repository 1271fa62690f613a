"""API fuzzing with schemathesis against the OpenAPI schema that a served ``memsvc`` app publishes.

    memsvc bench fuzz [--requests 5000] [--seed 0]

A real ``memsvc`` FastAPI app runs under uvicorn on a loopback port (a thread of this process, over a
``Memory`` in a temporary directory); schemathesis loads ``/openapi.json`` from it and generates
requests for every operation, positive (schema-valid) and negative (schema-violating) cases in turn,
round after round with new seeds until ``requests`` were sent. Most requests carry a valid key for
their route (a tenant key, or the admin key for ``/v1/admin``); every 20th has none and every 20th a
forged one. Each answer is checked:

- no 5xx, ever;
- every 4xx carries the error body ``{"error": {"type", "message", "status" == the HTTP status}}``;
- a rejected write (POST/DELETE answered 4xx) leaves the tenant's stored data byte-identical: a
  SHA-256 over every row of the tenant in every data table plus the vector counts, taken after each
  write;
- another tenant's data, seeded first and never addressed, is byte-identical at the end.

Schemathesis' own response-conformance checks run too; their findings are counted per check (they
are documentation gaps, not failures of the properties above).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["fingerprint", "run_fuzz", "serve_in_thread"]

_DATA_TABLES = ("events", "units", "unit_sources", "unit_links", "video_streams", "unit_facts",
                "consolidation_state")
_WRITES = {"POST", "DELETE", "PUT", "PATCH"}
_PUBLIC = {"/healthz", "/readyz", "/metrics", "/openapi.json"}


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, in a daemon thread; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True, name="memsvc-fuzz-server")
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def fingerprint(memory: Any, tenant: str) -> str:
    """SHA-256 of every stored row of ``tenant`` (all data tables, in primary-key order) and its counts."""
    from sqlalchemy import MetaData, select

    engine = memory.service.sql.engine
    meta = MetaData()
    meta.reflect(engine, only=[t for t in _DATA_TABLES if engine.dialect.has_table(engine.connect(), t)])
    h = hashlib.sha256()
    with engine.connect() as conn:
        for name in sorted(meta.tables):
            table = meta.tables[name]
            if "tenant_id" not in table.c:
                continue
            order = list(table.primary_key.columns) or list(table.c)
            rows = conn.execute(select(table).where(table.c.tenant_id == tenant).order_by(*order))
            h.update(name.encode())
            for row in rows:
                h.update(repr(tuple(row)).encode("utf-8", "backslashreplace"))
    h.update(json.dumps(memory.for_tenant(tenant).stats(), sort_keys=True).encode())
    return h.hexdigest()


def _seed(memory: Any, tenant: str) -> None:
    import numpy as np

    t0 = datetime(2024, 3, 1, 9, tzinfo=UTC)
    m = memory.for_tenant(tenant)
    for u, lines in (("alice", ["I adopted a golden retriever named Rex", "Rex loves the beach"]),
                     ("bob", ["my sister moved to Lisbon", "I booked a trip to Kyoto in May"])):
        m.add([{"role": "user", "content": x, "client_id": f"{u}-{i}"} for i, x in enumerate(lines)],
              user_id=u, session_id="s1", timestamp=t0)
    m.add_frames("cam", "alice", [t0, t0 + timedelta(seconds=1)], embeddings=np.eye(2, 16, dtype=np.float32),
                 captions=["a door opens", "a dog runs in"], final=True)


def _error_body_problem(status: int, body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return "body is not JSON"
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return "no 'error' object"
    if not isinstance(err.get("type"), str) or not err["type"]:
        return "no error.type"
    if not isinstance(err.get("message"), str) or not err["message"].strip():
        return "no error.message"
    if err.get("status") != status:
        return f"error.status {err.get('status')!r} != {status}"
    return None


def run_fuzz(
    requests: int = 5000,
    *,
    seed: int = 0,
    memory: Any = None,
    settings: Any = None,
    max_seconds: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fuzz a served app over ``memory`` (default: a new ``Memory(settings)``, by default embedded with the
    hashing embedder in a temporary directory) with ``requests`` generated requests; returns counts and
    findings, and ``ok``: no 5xx, no 4xx without the error body, no rejected write that changed data, no
    request without a valid key accepted, the other tenant unchanged."""
    import hypothesis
    import requests as rq
    import schemathesis
    from hypothesis import HealthCheck, Phase
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi.checks import ignored_auth  # our own key rotation replaces it

    from memsvc import Memory, Settings
    from memsvc.api import create_app

    with contextlib.ExitStack() as stack:
        if memory is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="memsvc-fuzz-"))
            memory = Memory(settings or Settings(data_dir=Path(tmp), embedder={"backend": "hashing"}))
            stack.callback(memory.close)
        app = create_app(memory=memory)
        keys = app.state.api.keys
        tenant, sentinel = "fuzz", "sentinel"
        _, tkey = keys.create(tenant, "fuzz")
        _, akey = keys.create(None, "fuzz-admin", admin=True)
        _seed(memory, tenant)
        _seed(memory, sentinel)
        for t in (tenant, sentinel):  # store-wide maintenance (index reconcile) has nothing left to do
            memory.for_tenant(t).consolidate()
        sentinel_before = fingerprint(memory, sentinel)
        url = stack.enter_context(serve_in_thread(app))
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        ops = [r.ok() for r in schema.get_all_operations()]
        session = stack.enter_context(rq.Session())

        status: Counter[int] = Counter()
        per_op: dict[str, Counter[int]] = {}
        conformance: Counter[str] = Counter()
        server_errors: list[dict[str, Any]] = []
        unauthenticated: list[dict[str, Any]] = []
        samples: dict[int, list[str]] = {}
        bad_bodies: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        state = {"n": 0, "fp": fingerprint(memory, tenant)}
        started = time.monotonic()

        def send(case: Any) -> None:
            n = state["n"]
            state["n"] = n + 1
            label = f"{case.method.upper()} {case.path}"
            headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            anonymous = n % 20 in (0, 1)
            if n % 20 == 1:
                headers["Authorization"] = "Bearer msk_000000000000_forged-key-for-fuzzing-0000000000000000"
            elif n % 20 != 0:
                headers["Authorization"] = f"Bearer {akey if case.path.startswith('/v1/admin') else tkey}"
            case.headers = headers
            write = case.method.upper() in _WRITES and not case.path.startswith("/v1/admin")
            try:
                resp = case.call(base_url=url, session=session, timeout=120)
            except Exception as exc:  # noqa: BLE001 - a dropped connection is a server failure too
                server_errors.append({"op": label, "status": None, "error": f"{type(exc).__name__}: {exc}"[:300]})
                return
            code = resp.status_code
            status[code] += 1
            per_op.setdefault(label, Counter())[code] += 1
            if len(samples.setdefault(code, [])) < 3 and code != 200:
                samples[code].append(f"{label}: {resp.content[:200].decode('utf-8', 'replace')}")
            if anonymous and code < 400 and case.path not in _PUBLIC:
                unauthenticated.append({"op": label, "status": code})
            if code >= 500:
                server_errors.append({"op": label, "status": code, "body": resp.content[:300].decode("utf-8", "replace"),
                                      "curl": case.as_curl_command()[:2000]})
            elif code >= 400:
                problem = _error_body_problem(code, resp.content)
                if problem is not None:
                    bad_bodies.append({"op": label, "status": code, "problem": problem,
                                       "body": resp.content[:300].decode("utf-8", "replace")})
            if write:
                fp = fingerprint(memory, tenant)
                if code >= 400 and fp != state["fp"]:
                    changed.append({"op": label, "status": code, "curl": case.as_curl_command()[:2000]})
                state["fp"] = fp
            try:
                case.validate_response(resp, excluded_checks=[ignored_auth])
            except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis: a Failure or a FailureGroup
                for failure in getattr(exc, "exceptions", [exc]):
                    conformance[f"{label}: {getattr(failure, 'title', type(failure).__name__)}"] += 1

        rounds = 0
        while state["n"] < requests:
            before = state["n"]
            left = requests - state["n"]
            per = max(5, left // (2 * len(ops)) + 1)
            for op in ops:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    if state["n"] >= requests or (max_seconds is not None and time.monotonic() - started > max_seconds):
                        break

                    @hypothesis.settings(max_examples=per, deadline=None, database=None, phases=[Phase.generate],
                                         suppress_health_check=list(HealthCheck), derandomize=False)
                    @hypothesis.seed(seed * 1000 + rounds)
                    @hypothesis.given(case=op.as_strategy(generation_mode=mode))
                    def drive(case: Any) -> None:
                        if state["n"] < requests:
                            send(case)

                    with contextlib.suppress(hypothesis.errors.Unsatisfiable, hypothesis.errors.FailedHealthCheck):
                        drive()
            rounds += 1
            if progress is not None:
                progress(f"round {rounds}: {state['n']} requests, {dict(sorted(status.items()))}")
            if state["n"] == before or (max_seconds is not None and time.monotonic() - started > max_seconds):
                break

        sentinel_after = fingerprint(memory, sentinel)
        ok = not (server_errors or bad_bodies or changed or unauthenticated) and sentinel_after == sentinel_before
        return {
            "ok": ok,
            "benchmark": "fuzz", "requests": state["n"], "rounds": rounds, "seconds": round(time.monotonic() - started, 1),
            "operations": len(ops), "status_counts": {str(k): v for k, v in sorted(status.items())},
            "per_operation": {k: {str(s): c for s, c in sorted(v.items())} for k, v in sorted(per_op.items())},
            "response_samples": {str(k): v for k, v in sorted(samples.items())},
            "unauthenticated_accepted": len(unauthenticated), "unauthenticated_samples": unauthenticated[:20],
            "server_errors": len(server_errors), "server_error_samples": server_errors[:20],
            "4xx_without_error_body": len(bad_bodies), "bad_body_samples": bad_bodies[:20],
            "rejected_writes_that_changed_data": len(changed), "changed_samples": changed[:20],
            "other_tenant_unchanged": sentinel_after == sentinel_before,
            "schema_conformance_findings": dict(conformance.most_common()),
        }
