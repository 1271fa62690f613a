"""SQLAlchemy 2.x tables: the source of truth. Alembic migrations in ``migrations/`` mirror them.

    events        what clients sent (chat turns, video frames), immutable once written
    units         memories at every Level (a turn unit shares its event's id), with producer versions,
                  index state, validity and retention fields
    unit_sources  unit -> event provenance (what ``Hit.source_ids`` lists)
    unit_links    parent unit -> child unit provenance (summary -> episodes); cascades on delete
    index_meta    which embedder/dimension built the vector index (refuses a silent mix)
    video_streams per (tenant, user, stream): the online scene state (open scene, short-term buffer,
                  segmenter window) so chunked ingest continues exactly across calls and restarts
    unit_facts    (subject, attribute, value) statements found in a unit by consolidation
    consolidation_state  per tenant/user/job progress marks of the consolidation jobs
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "ConsolidationStateRow",
    "EventRow",
    "IndexMetaRow",
    "StreamStateRow",
    "UTCDateTime",
    "UnitFactRow",
    "UnitLinkRow",
    "UnitRow",
    "UnitSourceRow",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: identical on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """Current time, aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[str | None] = mapped_column(String(256))
    stream_id: Mapped[str | None] = mapped_column(String(256))
    seq: Mapped[int] = mapped_column(Integer)
    """Arrival order within the user (monotone), ties of equal timestamps keep it."""
    role: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(256))
    text: Mapped[str | None] = mapped_column(Text)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    client_id: Mapped[str | None] = mapped_column(String(256))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    image_ref: Mapped[str | None] = mapped_column(String(1024))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id", "client_id"),
        Index("ix_events_scope_session", "tenant_id", "user_id", "session_id", "seq"),
        Index("ix_events_scope_stream", "tenant_id", "user_id", "stream_id", "ts"),
        Index("ix_events_scope_seq", "tenant_id", "user_id", "seq"),
    )


class UnitRow(Base):
    __tablename__ = "units"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(256))
    level: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[str | None] = mapped_column(String(256))
    stream_id: Mapped[str | None] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    start_ts: Mapped[datetime] = mapped_column(UTCDateTime())
    end_ts: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="closed")
    """``open`` (an episode still growing), ``closed``, ``superseded`` or ``deleted`` (soft)."""
    index_state: Mapped[str] = mapped_column(String(16), default="pending")
    embedder: Mapped[str | None] = mapped_column(String(256))
    embedder_version: Mapped[str | None] = mapped_column(String(64))
    compressor: Mapped[str | None] = mapped_column(String(256))
    compressor_version: Mapped[str | None] = mapped_column(String(64))
    segmenter: Mapped[str | None] = mapped_column(String(256))
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    strength: Mapped[float] = mapped_column(Float, default=1.0)
    access_count: Mapped[int] = mapped_column(Integer, default=0)
    last_accessed: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    content_hash: Mapped[str | None] = mapped_column(String(64))
    """Hash of (level, session, text, start) set by consolidation to find exact duplicates."""

    __table_args__ = (
        Index("ix_units_scope_level", "tenant_id", "user_id", "level", "status"),
        Index("ix_units_scope_hash", "tenant_id", "user_id", "content_hash"),
        Index("ix_units_scope_session", "tenant_id", "user_id", "session_id", "status"),
        Index("ix_units_index_state", "index_state"),
    )


class UnitSourceRow(Base):
    __tablename__ = "unit_sources"

    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_unit_sources_event", "event_id"),)


class UnitLinkRow(Base):
    __tablename__ = "unit_links"

    parent_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    child_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index("ix_unit_links_child", "child_id"),)


class IndexMetaRow(Base):
    __tablename__ = "index_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024))


class StreamStateRow(Base):
    __tablename__ = "video_streams"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    stream_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Serialised ``memsvc.video`` stream state (versioned inside)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class UnitFactRow(Base):
    """A statement ``subject attribute = value`` read from a unit (e.g. ``Ann residence = lisbon``)."""

    __tablename__ = "unit_facts"

    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    subject: Mapped[str] = mapped_column(String(256), primary_key=True)
    attribute: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(256))
    value: Mapped[str] = mapped_column(String(512))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seq: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_unit_facts_key", "tenant_id", "user_id", "subject", "attribute"),)


class ConsolidationStateRow(Base):
    """Where a consolidation job stands for one user (``user_id=""`` for tenant-wide jobs)."""

    __tablename__ = "consolidation_state"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    mark: Mapped[str | None] = mapped_column(String(256))
    """Job-defined progress mark (a sequence number or an ISO time)."""
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
