"""Request and response bodies of the REST API (pydantic v2), one per route; they make the OpenAPI schema.

Requests forbid unknown fields. Value checks that depend on configuration (text length, batch size,
page size) and the SDK's own checks run in the routes and answer 422 with the SDK's error type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AddEventsRequest",
    "AddFramesRequest",
    "AddMessagesRequest",
    "AddResponse",
    "ChatEventIn",
    "ConsolidateResponse",
    "ContextRequest",
    "ContextResponse",
    "DeleteResponse",
    "ErrorBody",
    "ErrorInfo",
    "FrameEventIn",
    "HealthResponse",
    "HistoryResponse",
    "HitOut",
    "KeyCreateRequest",
    "KeyCreated",
    "KeyList",
    "KeyOut",
    "MessageIn",
    "RecordOut",
    "SearchRequest",
    "SearchResponse",
    "StatsResponse",
]

Id = Annotated[str, Field(min_length=1, max_length=256)]
Meta = dict[str, Any]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageIn(_In):
    """One chat message, as in ``Memory.add``."""

    role: str = "user"
    content: str
    name: str | None = None
    timestamp: datetime | None = None
    client_id: str | None = None
    """Per-message idempotency key: a message whose client id is stored for this user is not stored again."""
    id: str | None = None
    """Alias of ``client_id`` (LangChain message ids)."""
    metadata: Meta | None = None


class AddMessagesRequest(_In):
    messages: list[MessageIn]
    user_id: Id
    session_id: Id | None = None
    timestamp: datetime | None = None
    """Time of messages that carry none (default: now); must include a UTC offset."""
    metadata: Meta | None = None


class AddFramesRequest(_In):
    stream_id: Id
    user_id: Id
    timestamps: list[datetime]
    embeddings: list[list[float]] | None = None
    """One vector per frame (your vision encoder's), or null when captions carry the frames."""
    captions: list[str | None] | None = None
    images: list[str | None] | None = None
    """Image references (URLs, object keys). The server never opens a path a client sends."""
    client_ids: list[str | None] | None = None
    image_refs: list[str | None] | None = None
    """Same as ``images`` (the SDK name)."""
    final: bool = False
    """The stream ended with this chunk: close its open scene."""


class ConsolidateRequest(_In):
    user_id: Id | None = None
    """Consolidate one user of the key's tenant; all of its users when absent."""
    jobs: list[str] | None = None
    """Job names to run (default: all)."""


class ChatEventIn(_In):
    type: Literal["chat"] = "chat"
    user_id: Id
    text: str
    role: str = "user"
    session_id: Id | None = None
    timestamp: datetime | None = None
    name: str | None = None
    client_id: str | None = None
    metadata: Meta = Field(default_factory=dict)


class FrameEventIn(_In):
    type: Literal["frame"]
    user_id: Id
    stream_id: Id
    timestamp: datetime
    embedding: list[float] | None = None
    caption: str | None = None
    image_ref: str | None = None
    client_id: str | None = None
    metadata: Meta = Field(default_factory=dict)


class AddEventsRequest(_In):
    events: list[Annotated[ChatEventIn | FrameEventIn, Field(discriminator="type")]]


class AddResponse(BaseModel):
    ids: list[str]
    """Event ids in input order (an already stored client id returns the stored id)."""


class SearchRequest(_In):
    query: str
    user_id: Id
    limit: int | None = Field(None, ge=1)
    budget_tokens: int | None = Field(None, ge=1, le=10_000_000)
    time_range: tuple[datetime | None, datetime | None] | None = None
    levels: list[str] | None = None
    session_id: Id | None = None
    stream_id: Id | None = None
    query_time: datetime | None = None


class ContextRequest(SearchRequest):
    budget_tokens: int = Field(default=1000, ge=1, le=10_000_000)


class HitOut(BaseModel):
    """A ranked memory unit (``memsvc.Hit``)."""

    id: str
    text: str
    score: float
    level: str
    start_time: datetime
    end_time: datetime
    source_ids: list[str]
    user_id: str
    session_id: str | None = None
    stream_id: str | None = None
    tokens: int = 0
    components: dict[str, float] = Field(default_factory=dict)
    metadata: Meta = Field(default_factory=dict)
    seq: int | None = None
    """Position of the unit's first event in the user's history (orders packed context)."""


class SearchResponse(BaseModel):
    hits: list[HitOut]


class ContextResponse(BaseModel):
    context: str
    """Prompt text, never longer than ``budget_tokens`` cl100k_base tokens."""


class RecordOut(BaseModel):
    """A stored event or unit (``memsvc.MemoryRecord``)."""

    id: str
    kind: str
    text: str | None
    user_id: str
    start_time: datetime
    end_time: datetime
    session_id: str | None = None
    stream_id: str | None = None
    role: str | None = None
    name: str | None = None
    source_ids: list[str] = Field(default_factory=list)
    metadata: Meta = Field(default_factory=dict)
    producer: dict[str, str] = Field(default_factory=dict)


class HistoryResponse(BaseModel):
    items: list[RecordOut]
    limit: int
    offset: int
    next_offset: int | None
    """Pass it as ``offset`` for the next page; null on the last page."""


class DeleteResponse(BaseModel):
    deleted: int
    """Memory units removed."""


class ConsolidateResponse(BaseModel):
    report: Meta


class StatsResponse(BaseModel):
    counts: dict[str, int]


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


class KeyCreateRequest(_In):
    tenant: str = Field(min_length=1, max_length=128)
    name: str = Field("", max_length=256)


class KeyOut(BaseModel):
    id: str
    tenant: str | None
    name: str
    is_admin: bool
    created_at: datetime
    revoked_at: datetime | None = None


class KeyCreated(KeyOut):
    key: str
    """The secret, shown once: store it now."""


class KeyList(BaseModel):
    keys: list[KeyOut]


class ErrorInfo(BaseModel):
    type: str
    """The ``memsvc.exceptions`` class name (``TextTooLongError``, ``RecordNotFound``, ...) or an HTTP
    error name (``AuthenticationError``, ``PayloadTooLarge``, ``RateLimited``, ...)."""
    message: str
    status: int
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer has this body."""

    error: ErrorInfo
