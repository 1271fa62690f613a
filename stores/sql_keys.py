"""API keys and idempotency records for the REST service (SQL, same database as the memories).

    api_keys          one row per key: tenant, label, admin flag, SHA-256 of the key (never the key)
    idempotency_keys  one row per (tenant, Idempotency-Key): request fingerprint and the stored response

``APIKeyStore`` works on any SQLAlchemy engine (it shares ``SQLRecordStore.engine``); the tables are
created by the Alembic migration ``0002_api_keys``.

Keys look like ``msk_<12 hex id>_<43 url-safe chars>`` (256 random bits). A fast hash is enough for
secrets of that entropy (nothing to brute-force, unlike passwords), so verification is one indexed
lookup of ``sha256(key)``. The id part is public: it names the key in ``keys list``/``keys revoke``.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, Engine, Integer, String, delete, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from memsvc.exceptions import InvalidInputError, RecordNotFound, StoreError, StoreUnavailable
from memsvc.stores.sql_schema import Base, UTCDateTime, utcnow

__all__ = ["APIKey", "APIKeyRow", "APIKeyStore", "IdempotencyRow", "IdemClaim", "KEY_PREFIX", "hash_key"]

KEY_PREFIX = "msk_"


def hash_key(key: str) -> str:
    """Hex SHA-256 of a key: what the table stores and looks up."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class APIKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(128), index=True)
    """The tenant this key acts for; None for an admin key (tenant management only)."""
    name: Mapped[str] = mapped_column(String(256), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdempotencyRow(Base):
    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    """SHA-256 of method, path and body: a key reused for another request is refused."""
    state: Mapped[str] = mapped_column(String(16), default="pending")
    """``pending`` while the first request runs, then ``done``."""
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


@dataclass(frozen=True, slots=True)
class APIKey:
    """A key's public facts (never the secret)."""

    id: str
    tenant: str | None
    name: str
    is_admin: bool
    created_at: datetime
    revoked_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tenant": self.tenant, "name": self.name, "is_admin": self.is_admin,
                "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


@dataclass(frozen=True, slots=True)
class IdemClaim:
    """Outcome of ``APIKeyStore.claim``: ``new`` (run the request), ``replay`` (send ``response``
    again), ``conflict`` (another request holds the key) or ``mismatch`` (key reused, other body)."""

    outcome: str
    status_code: int | None = None
    response: Any = None


def _public(row: APIKeyRow) -> APIKey:
    return APIKey(row.id, row.tenant_id, row.name, row.is_admin, row.created_at, row.revoked_at)


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        raise StoreUnavailable(f"database unavailable: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"database error: {exc}") from exc


class APIKeyStore:
    """Create, verify, list and revoke API keys; claim and complete idempotency keys."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        with _mapped(), self._sessions() as s, s.begin():
            yield s

    # -- API keys ----------------------------------------------------------------------------------
    def create(self, tenant: str | None, name: str = "", admin: bool = False) -> tuple[APIKey, str]:
        """A new key for ``tenant`` (or an admin key: ``tenant=None, admin=True``). Returns the
        public record and the secret, which is shown once and never stored."""
        if admin == (tenant is not None):
            raise InvalidInputError("a key has either a tenant or the admin flag, not both")
        if tenant is not None and (not tenant.strip() or len(tenant) > 128 or "\x00" in tenant):
            raise InvalidInputError("tenant must be 1-128 characters without NUL")
        if len(name) > 256:
            raise InvalidInputError("key name must be at most 256 characters")
        key_id = secrets.token_hex(6)
        secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        row = APIKeyRow(id=key_id, tenant_id=tenant, name=name, key_hash=hash_key(secret), is_admin=admin,
                        created_at=utcnow())
        with self._session() as s:
            s.add(row)
        return _public(row), secret

    def verify(self, secret: str) -> APIKey | None:
        """The live key matching ``secret``, or None (unknown, malformed or revoked)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 128:
            return None
        with self._session() as s:
            row = s.scalar(select(APIKeyRow).where(APIKeyRow.key_hash == hash_key(secret)))
        if row is None or row.revoked_at is not None:
            return None
        return _public(row)

    def revoke(self, key_id: str) -> APIKey:
        """Revoke a key by id (idempotent); ``RecordNotFound`` when unknown."""
        with self._session() as s:
            row = s.get(APIKeyRow, key_id)
            if row is None:
                raise RecordNotFound(f"no API key {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _public(row)

    def get(self, key_id: str) -> APIKey:
        with self._session() as s:
            row = s.get(APIKeyRow, key_id)
        if row is None:
            raise RecordNotFound(f"no API key {key_id!r}")
        return _public(row)

    def list(self, tenant: str | None = None, include_revoked: bool = False) -> list[APIKey]:
        with self._session() as s:
            q = select(APIKeyRow).order_by(APIKeyRow.created_at, APIKeyRow.id)
            if tenant is not None:
                q = q.where(APIKeyRow.tenant_id == tenant)
            if not include_revoked:
                q = q.where(APIKeyRow.revoked_at.is_(None))
            return [_public(r) for r in s.scalars(q)]

    # -- idempotency -------------------------------------------------------------------------------
    def claim(self, tenant: str, key: str, fingerprint: str, stale_after_s: float = 300.0) -> IdemClaim:
        """Take ``key`` for a request, or say why not. A ``pending`` claim older than
        ``stale_after_s`` (its process died) is taken over; the write it guarded is deduplicated by
        the client ids derived from the key."""
        now = utcnow()
        try:
            with self._session() as s:
                s.add(IdempotencyRow(tenant_id=tenant, key=key, fingerprint=fingerprint, state="pending",
                                     created_at=now))
            return IdemClaim("new")
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        with self._session() as s:
            row = s.get(IdempotencyRow, (tenant, key))
            if row is None:  # completed-then-purged or released between the two statements
                s.add(IdempotencyRow(tenant_id=tenant, key=key, fingerprint=fingerprint, created_at=now))
                return IdemClaim("new")
            if row.fingerprint != fingerprint:
                return IdemClaim("mismatch")
            if row.state == "done":
                return IdemClaim("replay", row.status_code, row.response)
            if row.created_at < now - timedelta(seconds=stale_after_s):
                row.created_at = now
                return IdemClaim("new")
            return IdemClaim("conflict")

    def complete(self, tenant: str, key: str, status_code: int, response: Any) -> None:
        with self._session() as s:
            s.execute(update(IdempotencyRow)
                      .where(IdempotencyRow.tenant_id == tenant, IdempotencyRow.key == key)
                      .values(state="done", status_code=status_code, response=response))

    def release(self, tenant: str, key: str) -> None:
        """Forget a claim whose request failed, so that a retry runs again."""
        with self._session() as s:
            s.execute(delete(IdempotencyRow)
                      .where(IdempotencyRow.tenant_id == tenant, IdempotencyRow.key == key))

    def purge_idempotency(self, older_than: datetime) -> int:
        with self._session() as s:
            res = s.execute(delete(IdempotencyRow).where(IdempotencyRow.created_at < older_than))
        return int(getattr(res, "rowcount", 0) or 0)
