"""REST load on loopback: add throughput and search latency with N concurrent async httpx clients.

    memsvc bench rest [--clients 8] [--adds 2000] [--searches 2000] [--embedder sentence-transformers]
    memsvc bench rest --url http://127.0.0.1:8000 --key msk_...      # a server you started yourself
    memsvc bench rest --database-url postgresql+psycopg://...        # SQL on PostgreSQL (an empty database)
    memsvc bench rest --duration 300 [--mix add=0.3,search=0.5,context=0.2] [--preload 200]

Without ``--url`` it starts ``memsvc serve`` (embedded profile) on a free loopback port over a fresh
temporary data directory, creates a tenant key with ``memsvc keys create``, runs two phases, and stops
the server: first ``adds`` single-message ``POST /v1/messages`` (each client its own user, an
``Idempotency-Key`` on each), then ``searches`` ``POST /v1/search`` (limit 10) over what was stored.
Latencies are client-side, per request; throughput is requests over the phase's wall time.

With ``--duration S`` it runs one mixed phase instead: after ``preload`` messages per client (bulk,
not measured), every client sends back to back, for S seconds, a random mix of single-message adds,
``/v1/search`` (limit 10) and ``/v1/context`` (budget 1000 tokens) for its own user: the highest rate
that many clients reach. It reports requests/s, p50/p95/p99 per operation, errors (any non-200 or
transport failure), the server's RSS sampled every ``rss_every_s`` seconds (start, end, min, max, the
series, and the growth from the first to the last fifth of the run) and the load average.
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


async def _mixed(url: str, key: str, clients: int, duration: float, mix: dict[str, float], preload: int,
                 pid: int | None, rss_every_s: float) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    conns = [httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) for _ in range(clients)]
    rng = random.Random(0)
    try:
        for w, c in enumerate(conns):  # preload (bulk) and warm up, not measured
            for start in range(0, preload, 100):
                msgs = [{"role": "user", "content": _sentence(rng, i)} for i in range(start, min(preload, start + 100))]
                (await c.post("/v1/messages", json={"messages": msgs, "user_id": f"user{w}",
                                                    "session_id": f"pre{start // 100}"})).raise_for_status()
            (await c.post("/v1/messages", json={"messages": [{"content": _sentence(rng, -w - 1)}],
                                                "user_id": f"user{w}"})).raise_for_status()
            (await c.post("/v1/search", json={"query": "warm up", "user_id": f"user{w}"})).raise_for_status()
            (await c.post("/v1/context", json={"query": "warm up", "user_id": f"user{w}"})).raise_for_status()
        ops = sorted(mix)
        weights = [mix[o] for o in ops]
        lat: dict[str, list[float]] = {o: [] for o in ops}
        errors: dict[str, int] = dict.fromkeys(ops, 0)
        failures: list[str] = []
        rss: list[tuple[float, float | None]] = []
        load_start = _load_avg()
        t0 = time.perf_counter()
        deadline = t0 + duration

        def request(op: str, w: int, i: int) -> tuple[str, dict[str, Any], dict[str, str]]:
            user = f"user{w}"
            if op == "add":
                return "/v1/messages", {"messages": [{"role": "user", "content": _sentence(rng, i)}], "user_id": user,
                                        "session_id": f"s{i // 50}"}, {"Idempotency-Key": uuid.uuid4().hex}
            q = f"who {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}?"
            if op == "search":
                return "/v1/search", {"query": q, "user_id": user, "limit": 10}, {}
            return "/v1/context", {"query": q, "user_id": user, "budget_tokens": 1000}, {}

        async def worker(w: int) -> None:
            i = 0
            wrng = random.Random(w)
            while time.perf_counter() < deadline:
                op = wrng.choices(ops, weights)[0]
                path, body, extra = request(op, w, i)
                i += 1
                t = time.perf_counter()
                try:
                    resp = await conns[w].post(path, json=body, headers=extra)
                    ok = resp.status_code == 200
                    why = f"{op}: HTTP {resp.status_code} {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, why = False, f"{op}: {type(exc).__name__}: {exc}"
                lat[op].append(time.perf_counter() - t)
                if not ok:
                    errors[op] += 1
                    if len(failures) < 10:
                        failures.append(why)

        async def sampler() -> None:
            while True:
                rss.append((round(time.perf_counter() - t0, 1), _rss_mb(pid)))
                await asyncio.sleep(rss_every_s)

        probe = asyncio.create_task(sampler())
        await asyncio.gather(*(worker(w) for w in range(clients)))
        wall = time.perf_counter() - t0
        rss.append((round(wall, 1), _rss_mb(pid)))
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
        n = sum(len(v) for v in lat.values())
        values = [v for _, v in rss if v is not None]
        fifth = max(1, len(values) // 5)
        return {
            "duration_s": round(wall, 1), "requests": n, "throughput_rps": round(n / wall, 1) if wall else None,
            "errors": sum(errors.values()), "error_samples": failures,
            "mix": mix, "preload_per_client": preload,
            "ops": {o: {**_summary(lat[o], wall, errors[o])} for o in ops},
            "server_rss_mb": {
                "start": values[0] if values else None, "end": values[-1] if values else None,
                "min": min(values) if values else None, "max": max(values) if values else None,
                "growth_first_to_last_fifth": round(sum(values[-fifth:]) / fifth - sum(values[:fifth]) / fifth, 1)
                if values else None,
                "series": [[t, v] for t, v in rss],
            },
            "loadavg": {"start": load_start, "end": _load_avg()},
        }
    finally:
        for c in conns:
            await c.aclose()


def _load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def parse_mix(text: str) -> dict[str, float]:
    """``"add=0.3,search=0.5,context=0.2"`` -> weights (add, search and context only, positive sum)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, w = part.partition("=")
        name = name.strip()
        if name not in ("add", "search", "context"):
            raise ValueError(f"unknown operation {name!r} in the mix (add, search, context)")
        try:
            out[name] = float(w)
        except ValueError as exc:
            raise ValueError(f"weight of {name!r} must be a number, got {w!r}") from exc
        if out[name] < 0:
            raise ValueError(f"weight of {name!r} is negative")
    if not out or sum(out.values()) <= 0:
        raise ValueError("the mix needs a positive weight")
    return {k: v for k, v in out.items() if v > 0}


def run(clients: int = 8, adds: int = 2000, searches: int = 2000, embedder: str = "sentence-transformers",
        url: str | None = None, key: str | None = None, database_url: str | None = None,
        duration: float | None = None, mix: dict[str, float] | None = None, preload: int = 200,
        rss_every_s: float = 5.0) -> dict[str, Any]:
    """Run the load and return the JSON-ready result (the mixed phase when ``duration`` is given)."""
    from memsvc import __version__

    if clients < 1 or adds < 0 or searches < 0:
        raise ValueError("clients >= 1, adds >= 0, searches >= 0")
    if duration is not None:
        if duration <= 0 or preload < 0 or rss_every_s <= 0:
            raise ValueError("duration > 0, preload >= 0, rss_every_s > 0")
        mix = mix or {"add": 0.3, "search": 0.5, "context": 0.2}
    meta: dict[str, Any] = {
        "benchmark": "rest_load", "version": __version__, "clients": clients, "adds": adds, "searches": searches,
        "profile": "external" if url else ("service (PostgreSQL + qdrant-edge)" if database_url else "embedded"), "embedder": embedder if url is None else "server's",
        "python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        meta["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                        check=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    if duration is not None:
        meta.update(mode="mixed", duration=duration)
        del meta["adds"], meta["searches"]

    def load(u: str, k: str, pid: int | None) -> dict[str, Any]:
        if duration is not None:
            return asyncio.run(_mixed(u, k, clients, duration, mix or {}, preload, pid, rss_every_s))
        return asyncio.run(_load(u, k, clients, adds, searches, pid))

    if url is not None:
        if not key:
            raise ValueError("--url needs --key")
        return {**meta, **load(url, key, None)}
    with _server(embedder, database_url) as (u, k, pid):
        return {**meta, **load(u, k, pid)}
