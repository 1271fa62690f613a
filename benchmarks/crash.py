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
    """Where each process life ends: after a random number of acknowledgements, the next request is sent
    and the process is SIGKILLed a random part of a batch time later (during start-up, inside the write,
    or just after it answered)."""

    def __init__(self, plan: Plan, kills: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.left = kills
        self.span = max(1, plan.batches // (kills + 1))

    def next_life(self, remaining: int) -> tuple[int, float] | None:
        """(acknowledgements before the fatal request, its delay in batch times), or None: no kill. Each
        later planned kill keeps a batch of the ``remaining`` ones to die on, so every planned kill happens
        (a fatal request may still complete before the kill: that batch is acknowledged)."""
        if self.left <= 0:
            return None
        self.left -= 1
        return min(self.rng.randint(0, 2 * self.span), max(0, remaining - 1 - self.left)), self.rng.random() * 1.5


# -- embedded profile ------------------------------------------------------------------------------------
def child_main(a: argparse.Namespace) -> None:
    """The writer: for each batch number read on stdin, ``add`` it, then acknowledge it on stdout."""
    from memsvc import Memory, Settings

    plan = Plan(a.events, a.batch, a.users)
    settings = Settings(data_dir=Path(a.data_dir), embedder={"backend": a.embedder})
    with Memory(settings) as m:
        for line in sys.stdin:
            b = int(line)
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


def _ack(acks: _Acks, line: str) -> bool:
    try:
        d = json.loads(line)
        acks.add(int(d["b"]), list(d["ids"]), float(d["s"]))
    except (ValueError, KeyError, TypeError):
        return False
    return True


def run_embedded(plan: Plan, data_dir: Path, kills: int, seed: int, embedder: str,
                 progress: Callable[[str], None]) -> dict[str, Any]:
    acks = _Acks()
    killer = _Killer(plan, kills, seed)
    done_kills = lives = 0
    left: list[int | None] = []
    log = data_dir.parent / "writer.log"
    cmd = [sys.executable, "-m", "memsvc.benchmarks.crash", "child", "--data-dir", str(data_dir),
           "--embedder", embedder, "--events", str(plan.events), "--batch", str(plan.batch), "--users", str(plan.users)]
    while acks.count() < plan.batches:
        with log.open("ab") as err:
            proc = subprocess.Popen(cmd, env=_env(embedder), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, text=True, bufsize=1)
        assert proc.stdin is not None and proc.stdout is not None
        lives += 1
        life = killer.next_life(plan.batches - acks.count())
        served = 0
        try:
            while acks.count() < plan.batches:
                b = max(acks.ids, default=-1) + 1  # the first unacknowledged batch (sent again after a kill)
                proc.stdin.write(f"{b}\n")
                proc.stdin.flush()
                if life is not None and served == life[0]:
                    time.sleep(life[1] * acks.mean_batch_s())
                    done_kills += _kill(proc)
                    left.append(pending_units(f"sqlite:///{data_dir / 'memsvc.db'}"))
                    break
                line = proc.stdout.readline()
                if not _ack(acks, line):
                    raise RuntimeError(f"the writer died without being killed; see {log}")
                served += 1
            if proc.poll() is None:
                proc.stdin.close()
                if proc.wait(600) != 0:
                    raise RuntimeError(f"the writer failed; see {log}")
            for line in proc.stdout:  # an acknowledgement written just before the kill still counts
                _ack(acks, line)
        finally:
            if proc.poll() is None:
                _kill(proc)
            for f in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    f.close()
        progress(f"life {lives}: {acks.count()}/{plan.batches} batches acknowledged, kills {done_kills}")
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


class _Server:
    """``memsvc serve`` on a fixed port over one data directory and database, (re)started on demand."""

    def __init__(self, data_dir: Path, db: str, embedder: str, log: Path) -> None:
        self.cli = [sys.executable, "-c", "from memsvc.cli import main; main()"]
        # a claim left ``pending`` by a killed server is taken over by the retry after this long
        self.env = {**_env(embedder), "MEMSVC_API__IDEMPOTENCY_PENDING_S": "2"}
        self.data_dir, self.db, self.log = data_dir, db, log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def key(self) -> str:
        out = subprocess.run([*self.cli, "keys", "create", "--tenant", "crash", "--data-dir", str(self.data_dir),
                              "--database-url", self.db], env=self.env, capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[-1]

    def start(self, wait: bool) -> None:
        import httpx

        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*self.cli, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir), "--database-url",
                 self.db, "--log-level", "warning"], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while wait:  # /readyz: the embedder is loaded
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"memsvc serve did not start; see {self.log}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(120)


def _post(c: Any, plan: Plan, b: int, acks: _Acks, stats: dict[str, int], retry: bool) -> None:
    """Send batch ``b`` with its Idempotency-Key (the same on every retry) until it is acknowledged."""
    import httpx

    body = {"messages": [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in m.items()}
                         for m in plan.messages(b, with_client_ids=False)],
            "user_id": plan.user(b), "session_id": plan.session(b)}
    while True:
        t = time.perf_counter()
        try:
            r = c.post("/v1/messages", json=body, headers={"Idempotency-Key": f"b{b}"})
        except httpx.TransportError:
            stats["transport_errors"] += 1
            if not retry:
                return
            time.sleep(0.05)
            continue
        if r.status_code == 200:
            acks.add(b, list(r.json()["ids"]), time.perf_counter() - t)
            return
        stats[f"http_{r.status_code}"] = stats.get(f"http_{r.status_code}", 0) + 1
        if r.status_code not in (409, 500, 503):
            raise RuntimeError(f"batch {b}: HTTP {r.status_code} {r.text[:300]}")
        if not retry:
            return
        time.sleep(0.2)


def run_service(plan: Plan, data_dir: Path, db: str, kills: int, seed: int, embedder: str,
                progress: Callable[[str], None]) -> dict[str, Any]:
    import httpx

    server = _Server(data_dir, db, embedder, data_dir.parent / "server.log")
    key = server.key()
    acks = _Acks()
    stats: dict[str, int] = {"transport_errors": 0}
    killer = _Killer(plan, kills, seed)
    done_kills = lives = 0
    left: list[int | None] = []
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
            while acks.count() < plan.batches:
                life = killer.next_life(plan.batches - acks.count())
                # a life killed at once dies during start-up (the request then waits for the next life)
                server.start(wait=life is None or life[0] > 0)
                lives += 1
                served = 0
                while acks.count() < plan.batches:
                    b = max(acks.ids, default=-1) + 1
                    if life is not None and served == life[0]:
                        req = threading.Thread(target=_post, args=(c, plan, b, acks, stats, False), daemon=True)
                        req.start()
                        time.sleep(life[1] * acks.mean_batch_s())
                        assert server.proc is not None
                        done_kills += _kill(server.proc)
                        req.join(130)
                        left.append(pending_units(db))
                        break
                    _post(c, plan, b, acks, stats, retry=True)
                    served += 1
                progress(f"server life {lives}: {acks.count()}/{plan.batches} batches acknowledged, "
                         f"kills {done_kills}")
    finally:
        server.stop()
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
