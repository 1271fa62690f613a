"""REST load on loopback: add throughput and search latency with N concurrent async httpx clients.

    memsvc bench rest [--clients 8] [--adds 2000] [--searches 2000] [--embedder sentence-transformers]
    memsvc bench rest --url http://127.0.0.1:8000 --key msk_...      # a server you started yourself
    memsvc bench rest --database-url postgresql+psycopg://...        # SQL on PostgreSQL (an empty database)

Without ``--url`` it starts ``memsvc serve`` (embedded profile) on a free loopback port over a fresh
temporary data directory, creates a tenant key with ``memsvc keys create``, runs two phases, and stops
the server: first ``adds`` single-message ``POST /v1/messages`` (each client its own user, an
``Idempotency-Key`` on each), then ``searches`` ``POST /v1/search`` (limit 10) over what was stored.
Latencies are client-side, per request; throughput is requests over the phase's wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["run"]

_SUBJECTS = ["my sister", "the new manager", "our neighbour", "the dentist", "my friend Ana", "the landlord",
             "my cousin", "the coach"]
_VERBS = ["recommended", "complained about", "moved to", "bought", "painted", "cancelled", "booked", "visited"]
_OBJECTS = ["a small flat in Lisbon", "the blue bicycle", "a trip to Kyoto", "the Thursday yoga class",
            "a golden retriever puppy", "the jazz festival", "a vegetarian cookbook", "the dentist appointment"]


def _sentence(rng: random.Random, i: int) -> str:
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} (note {i})"


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def _summary(lat_s: list[float], wall_s: float, errors: int) -> dict[str, Any]:
    ms = [x * 1000 for x in lat_s]
    return {"requests": len(lat_s), "errors": errors, "seconds": round(wall_s, 2),
            "throughput_rps": round(len(lat_s) / wall_s, 1) if wall_s else None,
            "p50_ms": round(_pct(ms, 50), 2), "p95_ms": round(_pct(ms, 95), 2), "p99_ms": round(_pct(ms, 99), 2),
            "max_ms": round(max(ms), 2) if ms else None}


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(embedder: str, database_url: str | None) -> Iterator[tuple[str, str, int]]:
    """``memsvc serve`` in a subprocess over a temporary data directory (and, when given, a PostgreSQL
    database for the SQL side): (url, key, pid)."""
    import httpx

    cli = [sys.executable, "-c", "from memsvc.cli import main; main()"]
    env = {**os.environ, "MEMSVC_EMBEDDER__BACKEND": embedder, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory(prefix="memsvc-rest-") as tmp:
        db = ["--database-url", database_url] if database_url else []
        out = subprocess.run([*cli, "keys", "create", "--tenant", "bench", "--data-dir", tmp, *db], env=env,
                             capture_output=True, text=True, check=True)
        key = out.stdout.strip().splitlines()[-1]
        port = _free_port()
        proc = subprocess.Popen([*cli, "serve", "--port", str(port), "--data-dir", tmp, *db,
                                 "--log-level", "warning"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 600  # /readyz waits for the embedder to load
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("memsvc serve did not start")
                time.sleep(0.2)
            yield url, key, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=120)


async def _load(url: str, key: str, clients: int, adds: int, searches: int, pid: int | None) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    conns = [httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) for _ in range(clients)]
    rng = random.Random(0)
    try:
        # warm-up (model load, first index writes), not measured
        for i, c in enumerate(conns):
            r = await c.post("/v1/messages", json={"messages": [{"content": _sentence(rng, -i - 1)}],
                                                   "user_id": f"user{i}"})
            r.raise_for_status()
            (await c.post("/v1/search", json={"query": "warm up", "user_id": f"user{i}"})).raise_for_status()
        rss_before = _rss_mb(pid)

        async def phase(n: int, make: Any) -> dict[str, Any]:
            lat: list[float] = []
            errors = 0
            counter = iter(range(n))

            async def worker(w: int) -> None:
                nonlocal errors
                for i in counter:
                    path, body, extra = make(w, i)
                    t = time.perf_counter()
                    resp = await conns[w].post(path, json=body, headers=extra)
                    lat.append(time.perf_counter() - t)
                    if resp.status_code != 200:
                        errors += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(w) for w in range(clients)))
            return _summary(lat, time.perf_counter() - t0, errors)

        add = await phase(adds, lambda w, i: ("/v1/messages", {
            "messages": [{"role": "user", "content": _sentence(rng, i)}], "user_id": f"user{w}",
            "session_id": f"s{i // 50}"}, {"Idempotency-Key": uuid.uuid4().hex}))
        search = await phase(searches, lambda w, i: ("/v1/search", {
            "query": f"who {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}?", "user_id": f"user{w}", "limit": 10}, {}))
        return {"add": add, "search": search, "server_rss_mb": {"after_warmup": rss_before, "end": _rss_mb(pid)}}
    finally:
        for c in conns:
            await c.aclose()


def run(clients: int = 8, adds: int = 2000, searches: int = 2000, embedder: str = "sentence-transformers",
        url: str | None = None, key: str | None = None, database_url: str | None = None) -> dict[str, Any]:
    """Run the load and return the JSON-ready result."""
    from memsvc import __version__

    if clients < 1 or adds < 0 or searches < 0:
        raise ValueError("clients >= 1, adds >= 0, searches >= 0")
    meta: dict[str, Any] = {
        "benchmark": "rest_load", "version": __version__, "clients": clients, "adds": adds, "searches": searches,
        "profile": "external" if url else ("service (PostgreSQL + qdrant-edge)" if database_url else "embedded"), "embedder": embedder if url is None else "server's",
        "python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        meta["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                        check=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    if url is not None:
        if not key:
            raise ValueError("--url needs --key")
        return {**meta, **asyncio.run(_load(url, key, clients, adds, searches, None))}
    with _server(embedder, database_url) as (u, k, pid):
        return {**meta, **asyncio.run(_load(u, k, clients, adds, searches, pid))}
