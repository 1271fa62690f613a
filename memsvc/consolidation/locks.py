"""Per-user locks so two workers (or a worker and the embedded scheduler) never consolidate the
same user at once.

    UserLocks --> LocalLocks  (threads of one process: the embedded profile)
              --> FileLocks   (processes of one machine sharing a data directory; fcntl)
              --> RedisLocks  (Celery workers anywhere; expires after ``timeout_s`` if its holder dies)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Protocol

from memsvc.exceptions import MemsvcError, MissingDependencyError

__all__ = ["FileLocks", "LocalLocks", "LockBusy", "RedisLocks", "UserLocks"]


class LockBusy(MemsvcError):
    """Another worker holds this user's lock; retry later."""

    is_retryable: ClassVar[bool] = True


class UserLocks(Protocol):
    """``hold(tenant, user)`` is a context manager; raises ``LockBusy`` after ``wait_s``."""

    def hold(self, tenant: str, user: str, wait_s: float = 0.0) -> contextlib.AbstractContextManager[None]:
        """Hold the user's lock for the ``with`` block."""
        ...


def _key(tenant: str, user: str) -> str:
    return "memsvc:lock:" + hashlib.sha256(f"{tenant}\x1f{user}".encode()).hexdigest()[:32]


class LocalLocks:
    """Thread locks, one per user."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(self, tenant: str, user: str, wait_s: float = 0.0) -> Iterator[None]:
        with self._guard:
            lock = self._locks[_key(tenant, user)]
        got = lock.acquire(timeout=wait_s) if wait_s > 0 else lock.acquire(blocking=False)
        if not got:
            raise LockBusy(f"user {user!r} of tenant {tenant!r} is being consolidated")
        try:
            yield
        finally:
            lock.release()


class FileLocks:
    """``flock`` on one file per user under ``root``: released by the OS when the holder dies."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._local = LocalLocks()  # flock is per process; threads need their own exclusion

    @contextlib.contextmanager
    def hold(self, tenant: str, user: str, wait_s: float = 0.0) -> Iterator[None]:
        import fcntl
        import time

        self.root.mkdir(parents=True, exist_ok=True)
        with self._local.hold(tenant, user, wait_s):
            fd = os.open(self.root / (_key(tenant, user).rsplit(":", 1)[1] + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                deadline = time.monotonic() + wait_s
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise LockBusy(f"user {user!r} of tenant {tenant!r} is being consolidated") from None
                        time.sleep(0.05)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


class RedisLocks:
    """Redis locks (``SET NX PX`` with a token): expire after ``timeout_s`` if the holder is killed."""

    def __init__(self, url: str, timeout_s: float = 960.0) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - part of the worker extra
            raise MissingDependencyError("pip install memsvc[worker]") from exc
        self.client = redis.Redis.from_url(url)
        self.timeout_s = timeout_s

    @contextlib.contextmanager
    def hold(self, tenant: str, user: str, wait_s: float = 0.0) -> Iterator[None]:
        from redis.exceptions import RedisError

        from memsvc.exceptions import StoreUnavailable

        lock = self.client.lock(_key(tenant, user), timeout=self.timeout_s, blocking=wait_s > 0,
                                blocking_timeout=wait_s or None)
        try:
            got = lock.acquire()
        except RedisError as exc:
            raise StoreUnavailable(f"lock store unavailable: {exc}") from exc
        if not got:
            raise LockBusy(f"user {user!r} of tenant {tenant!r} is being consolidated")
        try:
            yield
        finally:
            with contextlib.suppress(RedisError):
                lock.release()
