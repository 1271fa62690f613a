"""Input checks at the SDK boundary. Everything is checked before anything is written, so a bad
request raises a typed error from ``memsvc.exceptions`` and leaves stored data untouched."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from memsvc.config import LimitsConfig
from memsvc.exceptions import (
    EmbeddingError,
    EmptyTextError,
    InvalidInputError,
    TextTooLongError,
    TimestampError,
)
from memsvc.models import ChatEvent

__all__ = ["check_embeddings", "check_id", "check_metadata", "check_text", "check_time", "check_time_range", "messages_to_events"]

_MIN_TS = datetime(1, 1, 2, tzinfo=UTC)
_MAX_TS = datetime(9999, 12, 30, tzinfo=UTC)
_ROLES = {"user", "assistant", "system", "tool", "human", "ai"}


def _encodable(value: str, what: str) -> None:
    """Refuse lone surrogates (``"\\ud800"``): no store can encode them as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} is not valid unicode (a lone surrogate at {exc.start})") from None


def check_id(value: Any, what: str, optional: bool = False) -> str | None:
    """A non-empty string id of at most 256 characters."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip() or len(value) > 256 or "\x00" in value:
        raise InvalidInputError(f"{what} must be 1-256 characters without NUL")
    _encodable(value, what)
    return value


def check_text(value: Any, what: str, limits: LimitsConfig, max_chars: int | None = None) -> str:
    """A non-blank string within the length limit."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidInputError(f"{what} must not contain NUL characters")
    if not value.strip():
        raise EmptyTextError(f"{what} is empty")
    cap = max_chars or limits.max_text_chars
    if len(value) > cap:
        raise TextTooLongError(f"{what} has {len(value)} characters; the limit is {cap}")
    _encodable(value, what)
    return value


def check_metadata(value: Any, what: str = "metadata", _depth: int = 0) -> None:
    """JSON that every SQL backend stores as given: str keys, finite numbers, text without NUL or lone
    surrogates (PostgreSQL's JSONB refuses both), at most 32 levels deep."""
    if _depth > 32:
        raise InvalidInputError(f"{what} is nested more than 32 levels deep")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{what} holds {value!r}; JSON has no NaN or infinity")
        return
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInputError(f"{what} holds a NUL character")
        _encodable(value, what)
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"{what} keys must be strings, got {type(k).__name__}")
            check_metadata(k, f"{what} key", _depth + 1)
            check_metadata(v, f"{what}[{k!r}]", _depth + 1)
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_metadata(v, f"{what}[{i}]", _depth + 1)
        return
    raise InvalidInputError(f"{what} holds a {type(value).__name__}, which is not JSON")


def check_time(value: Any, what: str = "timestamp") -> datetime:
    """An aware datetime (or ISO-8601 string with offset, or POSIX seconds), returned in UTC."""
    if isinstance(value, bool):
        raise TimestampError(f"{what} must be a datetime, got bool")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise TimestampError(f"{what} must be finite")
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise TimestampError(f"{what} {value!r} is out of range") from exc
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise TimestampError(f"{what} {value!r} is not ISO-8601") from exc
    if not isinstance(value, datetime):
        raise TimestampError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise TimestampError(
            f"{what} is a naive datetime; pass an aware one, e.g. datetime.now(timezone.utc)"
        )
    if not _MIN_TS <= value <= _MAX_TS:
        raise TimestampError(f"{what} {value!r} is out of range")
    return value.astimezone(UTC)


def check_time_range(value: Any) -> tuple[datetime | None, datetime | None] | None:
    """``(start, end)`` with either side optional; start must not be after end."""
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise TimestampError("time_range must be a (start, end) pair")
    start = None if value[0] is None else check_time(value[0], "time_range start")
    end = None if value[1] is None else check_time(value[1], "time_range end")
    if start is not None and end is not None and start > end:
        raise TimestampError("time_range start is after its end")
    return start, end


def check_embeddings(value: Any, n: int, dim: int | None) -> np.ndarray:
    """A finite float32 matrix of ``n`` rows (and ``dim`` columns when given)."""
    try:
        wide = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EmbeddingError(f"embeddings are not numeric: {exc}") from exc
    if wide.ndim != 2 or wide.shape[0] != n:
        raise EmbeddingError(f"embeddings must have shape ({n}, dim), got {wide.shape}")
    if dim is not None and wide.shape[1] != dim:
        raise EmbeddingError(f"embeddings must have {dim} columns, got {wide.shape[1]}")
    if wide.shape[1] == 0:
        raise EmbeddingError("embeddings have no columns")
    if not np.isfinite(wide).all():
        raise EmbeddingError("embeddings hold NaN or inf")
    if np.abs(wide).max() > np.finfo(np.float32).max:
        raise EmbeddingError("an embedding value is too large for float32")
    arr = wide.astype(np.float32)
    if not np.any(arr, axis=1).all():
        raise EmbeddingError("an embedding is all zeros")
    return arr


def messages_to_events(
    messages: Any,
    user_id: Any,
    session_id: Any,
    timestamp: Any,
    limits: LimitsConfig,
    metadata: Any = None,
) -> list[ChatEvent]:
    """Validate ``Memory.add`` arguments into chat events (all or nothing)."""
    uid = check_id(user_id, "user_id")
    sid = check_id(session_id, "session_id", optional=True)
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if isinstance(messages, Mapping):
        messages = [messages]
    if not isinstance(messages, Sequence) or not messages:
        raise InvalidInputError("messages must be a non-empty list of {'role', 'content'} dicts")
    if len(messages) > limits.max_batch:
        raise InvalidInputError(f"{len(messages)} messages in one call; the limit is {limits.max_batch}")
    base_ts = check_time(timestamp) if timestamp is not None else datetime.now(UTC)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidInputError("metadata must be a dict")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise InvalidInputError(f"messages[{i}] must be a dict, got {type(msg).__name__}")
        unknown = set(msg) - {"role", "content", "name", "timestamp", "id", "client_id", "metadata"}
        if unknown:
            raise InvalidInputError(f"messages[{i}] has unknown keys {sorted(unknown)}")
        role = msg.get("role", "user")
        if not isinstance(role, str) or role.lower() not in _ROLES:
            raise InvalidInputError(f"messages[{i}].role must be one of {sorted(_ROLES)}")
        text = check_text(msg.get("content"), f"messages[{i}].content", limits)
        name = check_id(msg.get("name"), f"messages[{i}].name", optional=True)
        cid = check_id(msg.get("client_id", msg.get("id")), f"messages[{i}].client_id", optional=True)
        ts = check_time(msg["timestamp"], f"messages[{i}].timestamp") if msg.get("timestamp") is not None else base_ts
        meta = dict(metadata or {})
        if msg.get("metadata") is not None:
            if not isinstance(msg["metadata"], Mapping):
                raise InvalidInputError(f"messages[{i}].metadata must be a dict")
            meta.update(msg["metadata"])
        check_metadata(meta, f"messages[{i}].metadata")
        out.append(
            ChatEvent(
                user_id=uid,  # type: ignore[arg-type]
                text=text,
                role=role.lower(),
                session_id=sid,
                timestamp=ts,
                name=name,
                client_id=cid,
                metadata=meta,
            )
        )
    return out
