"""Crash safety: SIGKILL the writer at random points while a client ingests N events, then check.

    memsvc bench crash [--events 10000] [--profile embedded|service] [--kills 10] [--seed 0]
                       [--embedder hashing|sentence-transformers] [--worker-kill]

Embedded profile: a child process (``python -m memsvc.benchmarks.crash child ...``) opens
``Memory(path=...)`` and adds the events in small batches, each message with a client id; after each
``add()`` returns it writes an acknowledgement line (batch number and the returned ids) to its stdout.
The parent, the client that records what was acknowledged, SIGKILLs the child at random moments (after
a random number of acknowledgements plus a random fraction of a batch time, so kills land inside
``add``, between batches or during start-up) and starts a new child from the first unacknowledged
batch, which is sent again as it was (the client ids make the re-send idempotent).

Service profile: ``memsvc serve`` on a fresh PostgreSQL database (SQL) with its qdrant-edge shards in a
temporary directory; the client posts each batch to ``/v1/messages`` with an ``Idempotency-Key`` (the
message client ids are derived from it by the server) and retries the same request until it gets an
answer; the parent SIGKILLs the server process and restarts it.

After the last event is acknowledged the store is opened (which repairs ``pending`` units), one
``reconcile`` pass runs, and ``memsvc.benchmarks.crash_check.check`` counts: acknowledged events that are
retrievable (``get`` by id returns their text, their turn vector and keyword document exist, they belong
to a live episode, a sample is found by ``search``), events or units stored twice, and vectors whose
unit SQL does not know. ``--worker-kill`` then runs ``memsvc.benchmarks.crash_worker`` on the store.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["Plan", "run_crash"]

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
_WHO = ["my sister", "the new manager", "our neighbour", "the dentist", "my friend Ana", "the landlord",
        "my cousin", "the coach", "grandpa Joe", "the plumber"]
_DID = ["recommended", "complained about", "moved to", "bought", "painted", "cancelled", "booked", "visited",
        "forgot", "borrowed"]
_WHAT = ["a small flat in Lisbon", "the blue bicycle", "a trip to Kyoto", "the Thursday yoga class",
         "a golden retriever puppy", "the jazz festival", "a vegetarian cookbook", "the piano recital",
         "a kayak on the lake", "the quarterly budget"]


@dataclass(frozen=True)
class Plan:
    """The events a client sends: ``events`` messages in batches of ``batch``, batch b to user
    ``u{b % users}``, sessions of ``session_batches`` batches per user."""

    events: int
    batch: int = 10
    users: int = 4
    session_batches: int = 5

    @property
    def batches(self) -> int:
        return (self.events + self.batch - 1) // self.batch

    def user(self, b: int) -> str:
        return f"u{b % self.users}"

    def session(self, b: int) -> str:
        return f"{self.user(b)}-s{(b // self.users) // self.session_batches}"

    def indexes(self, b: int) -> range:
        return range(b * self.batch, min(self.events, (b + 1) * self.batch))

    @staticmethod
    def text(i: int) -> str:
        r = random.Random(i)
        return f"{r.choice(_WHO)} {r.choice(_DID)} {r.choice(_WHAT)}, entry {i} ({uuid.UUID(int=r.getrandbits(128)).hex[:8]})"

    @staticmethod
    def ts(i: int) -> datetime:
        return T0 + timedelta(minutes=i)

    def messages(self, b: int, with_client_ids: bool = True) -> list[dict[str, Any]]:
        out = []
        for i in self.indexes(b):
            m: dict[str, Any] = {"role": "user", "name": "Ann" if i % 2 else "Bo", "content": self.text(i),
                                 "timestamp": self.ts(i)}
            if with_client_ids:
                m["client_id"] = f"c{i}"
            out.append(m)
        return out


@dataclass
class _Acks:
    """What the client saw acknowledged: batch -> returned ids (thread-safe)."""

    ids: dict[int, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    batch_s: list[float] = field(default_factory=list)

    def add(self, b: int, ids: list[str], seconds: float) -> None:
        with self.lock:
            self.ids[b] = ids
            self.batch_s.append(seconds)

    def count(self) -> int:
        with self.lock:
            return len(self.ids)

    def mean_batch_s(self) -> float:
        with self.lock:
            recent = self.batch_s[-50:]
        return sum(recent) / len(recent) if recent else 0.05


def _env(embedder: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}
    env.update(MEMSVC_EMBEDDER__BACKEND=embedder, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _kill(proc: subprocess.Popen[Any]) -> bool:
    """SIGKILL ``proc``; True when it was still running (a real kill)."""
    alive = proc.poll() is None
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    return alive


class _Killer:
    """Decides when each process life ends: after a random number of new acknowledgements, plus a random
    part of a batch time (so most kills land inside a write)."""

    def __init__(self, plan: Plan, kills: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.left = kills
        self.span = max(1, plan.batches // (kills + 1))

    def next_life(self) -> tuple[int, float] | None:
        if self.left <= 0:
            return None
        self.left -= 1
        return self.rng.randint(0, 2 * self.span), self.rng.random() * 1.5

    def wait_and_kill(self, proc: subprocess.Popen[Any], acks: _Acks, base: int, life: tuple[int, float],
                      total: int) -> bool:
        n, frac = life
        while acks.count() < min(total, base + n) and proc.poll() is None:
            time.sleep(0.002)
        if proc.poll() is not None:
            return False
        time.sleep(frac * acks.mean_batch_s())
        return _kill(proc)


# -- embedded profile ------------------------------------------------------------------------------------
def child_main(a: argparse.Namespace) -> None:
    """The writer: add batches ``start..`` and acknowledge each on stdout once ``add`` returned."""
    from memsvc import Memory, Settings

    plan = Plan(a.events, a.batch, a.users)
    settings = Settings(data_dir=Path(a.data_dir), embedder={"backend": a.embedder})
    with Memory(settings) as m:
        for b in range(a.start, plan.batches):
            t = time.perf_counter()
            ids = m.add(plan.messages(b), user_id=plan.user(b), session_id=plan.session(b))
            sys.stdout.write(json.dumps({"b": b, "ids": ids, "s": time.perf_counter() - t}) + "\n")
            sys.stdout.flush()


def pending_units(sql_url: str) -> int | None:
    """Units SQL holds but the index may lack (``pending``/``stale``): what a kill left for repair."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    eng = create_engine(sql_url)
    try:
        with eng.connect() as c:
            return int(c.execute(text("SELECT count(*) FROM units WHERE index_state IN ('pending', 'stale')")).scalar() or 0)
    except SQLAlchemyError:  # killed before the schema existed
        return None
    finally:
        eng.dispose()


def _reader(proc: subprocess.Popen[str], acks: _Acks) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        with contextlib.suppress(ValueError, KeyError):
            d = json.loads(line)
            acks.add(int(d["b"]), list(d["ids"]), float(d["s"]))


def run_embedded(plan: Plan, data_dir: Path, kills: int, seed: int, embedder: str,
                 progress: Callable[[str], None]) -> dict[str, Any]:
    acks = _Acks()
    killer = _Killer(plan, kills, seed)
    done_kills = lives = 0
    left: list[int | None] = []
    log = data_dir.parent / "writer.log"
    while acks.count() < plan.batches:
        start = max(acks.ids, default=-1) + 1
        cmd = [sys.executable, "-m", "memsvc.benchmarks.crash", "child", "--data-dir", str(data_dir),
               "--embedder", embedder, "--events", str(plan.events), "--batch", str(plan.batch),
               "--users", str(plan.users), "--start", str(start)]
        with log.open("ab") as err:
            proc = subprocess.Popen(cmd, env=_env(embedder), stdout=subprocess.PIPE, stderr=err, text=True)
        lives += 1
        reader = threading.Thread(target=_reader, args=(proc, acks), daemon=True)
        reader.start()
        life = killer.next_life()
        if life is not None and killer.wait_and_kill(proc, acks, acks.count(), life, plan.batches):
            done_kills += 1
            left.append(pending_units(f"sqlite:///{data_dir / 'memsvc.db'}"))
        rc = proc.wait()
        reader.join(60)
        progress(f"life {lives}: {acks.count()}/{plan.batches} batches acknowledged, kills {done_kills}")
        if life is None and rc != 0 and acks.count() < plan.batches:
            raise RuntimeError(f"writer failed (exit {rc}) without being killed; see {log}")
    return {"acks": acks.ids, "kills": done_kills, "lives": lives, "pending_after_kill": left}


# -- service profile -------------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new empty PostgreSQL database on the server of ``admin_url`` (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    name = f"memsvc_crash_{uuid.uuid4().hex[:10]}"
    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with eng.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()


def _serve(cli: list[str], env: dict[str, str], port: int, data_dir: Path, db: str, log: Path
           ) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([*cli, "serve", "--port", str(port), "--data-dir", str(data_dir), "--database-url", db,
                                 "--log-level", "warning"], env=env, stdout=out, stderr=subprocess.STDOUT)


def _sender(url: str, key: str, plan: Plan, acks: _Acks, stop: threading.Event, stats: dict[str, int]) -> None:
    """Send every batch in order, each with its own Idempotency-Key, until the server answers 200."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
        for b in range(plan.batches):
            body = {"messages": [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in m.items()}
                                 for m in plan.messages(b, with_client_ids=False)],
                    "user_id": plan.user(b), "session_id": plan.session(b)}
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    r = c.post("/v1/messages", json=body, headers={"Idempotency-Key": f"b{b}"})
                except httpx.TransportError:
                    stats["transport_errors"] += 1
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    acks.add(b, list(r.json()["ids"]), time.perf_counter() - t)
                    break
                stats[f"http_{r.status_code}"] = stats.get(f"http_{r.status_code}", 0) + 1
                if r.status_code not in (409, 500, 503):
                    raise RuntimeError(f"batch {b}: HTTP {r.status_code} {r.text[:300]}")
                time.sleep(0.2)


def run_service(plan: Plan, data_dir: Path, db: str, kills: int, seed: int, embedder: str,
                progress: Callable[[str], None]) -> dict[str, Any]:
    import httpx

    cli = [sys.executable, "-c", "from memsvc.cli import main; main()"]
    # a claim left ``pending`` by a killed server is taken over by the retry after this long
    env = {**_env(embedder), "MEMSVC_API__IDEMPOTENCY_PENDING_S": "2"}
    out = subprocess.run([*cli, "keys", "create", "--tenant", "crash", "--data-dir", str(data_dir), "--database-url",
                          db], env=env, capture_output=True, text=True, check=True)
    key = out.stdout.strip().splitlines()[-1]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = data_dir.parent / "server.log"
    acks, stop = _Acks(), threading.Event()
    stats: dict[str, int] = {"transport_errors": 0}
    killer = _Killer(plan, kills, seed)
    done_kills = lives = 0
    left: list[int | None] = []
    sender = threading.Thread(target=_sender, args=(url, key, plan, acks, stop, stats), daemon=True)
    proc = _serve(cli, env, port, data_dir, db, log)
    try:
        while True:
            lives += 1
            deadline = time.monotonic() + 600
            while True:  # /readyz: the embedder is loaded
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"memsvc serve did not start; see {log}")
                time.sleep(0.05)
            if not sender.is_alive() and lives == 1:
                sender.start()
            life = killer.next_life()
            if life is None:
                sender.join()
                break
            if killer.wait_and_kill(proc, acks, acks.count(), life, plan.batches):
                done_kills += 1
                left.append(pending_units(db))
            progress(f"server life {lives}: {acks.count()}/{plan.batches} batches acknowledged, kills {done_kills}")
            if acks.count() >= plan.batches:
                break
            proc = _serve(cli, env, port, data_dir, db, log)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(120)
    if acks.count() < plan.batches:
        raise RuntimeError(f"the client stopped at {acks.count()}/{plan.batches} batches; see {log}")
    return {"acks": acks.ids, "kills": done_kills, "lives": lives, "client": stats, "pending_after_kill": left}


# -- the whole run ---------------------------------------------------------------------------------------
def run_crash(events: int, profile: str = "embedded", kills: int = 10, seed: int = 0, embedder: str = "hashing",
              worker_kill: bool = False, pg_admin_url: str | None = None, redis_url: str = "redis://127.0.0.1:6379/0",
              batch: int = 10, users: int = 4, workdir: Path | None = None,
              progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Ingest under kills, recover, check; returns the JSON-ready result."""
    from memsvc import Memory, Settings
    from memsvc.benchmarks.crash_check import check

    if events < 1 or kills < 0 or batch < 1 or users < 1:
        raise ValueError("events >= 1, kills >= 0, batch >= 1, users >= 1")
    if profile not in ("embedded", "service"):
        raise ValueError("profile is embedded or service")
    plan = Plan(events, batch, users)
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memsvc-crash-")))
        data_dir = root / "store"
        t0 = time.perf_counter()
        if profile == "embedded":
            ran = run_embedded(plan, data_dir, kills, seed, embedder, progress)
            settings = Settings(data_dir=data_dir, embedder={"backend": embedder})
            client_id = "c{i}"
        else:
            admin = pg_admin_url or os.environ.get("MEMSVC_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
            db = stack.enter_context(fresh_database(admin))
            ran = run_service(plan, data_dir, db, kills, seed, embedder, progress)
            settings = Settings(profile="service", data_dir=data_dir, database_url=db, tenant="crash",
                                embedder={"backend": embedder})
            client_id = "idem:b{b}:{k}"
        ingest_s = time.perf_counter() - t0
        with Memory(settings) as m:
            result = check(m, plan, ran["acks"], client_id, seed)
        result.update(kills=ran["kills"], writer_lives=ran["lives"], ingest_s=round(ingest_s, 1),
                      pending_after_kill=ran["pending_after_kill"])
        if "client" in ran:
            result["client_retries"] = ran["client"]
        if worker_kill:
            from memsvc.benchmarks.crash_worker import run_worker_kill

            result["worker_kill"] = run_worker_kill(settings, plan, root, redis_url, seed, progress)
    head = {k: result.pop(k) for k in ("acknowledged", "recovered", "duplicates", "orphan_vectors", "kills")}
    return {**head, **result}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="crash bench writer child (use `memsvc bench crash`)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("child")
    c.add_argument("--data-dir", required=True)
    c.add_argument("--embedder", default="hashing")
    c.add_argument("--events", type=int, required=True)
    c.add_argument("--batch", type=int, default=10)
    c.add_argument("--users", type=int, default=4)
    c.add_argument("--start", type=int, default=0)
    a = ap.parse_args(argv)
    child_main(a)


if __name__ == "__main__":
    main()
