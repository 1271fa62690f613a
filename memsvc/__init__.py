"""memsvc: long-term memory for conversational and video assistants.

    from memsvc import Memory
    m = Memory()
    m.add(messages=[{"role": "user", "content": "I moved to Lisbon", "name": "Ann"}], user_id="u1")
    m.search("where does Ann live?", user_id="u1")
"""

from __future__ import annotations

from memsvc import exceptions
from memsvc._types import Level
from memsvc.config import Settings
from memsvc.exceptions import (
    ConfigError,
    InvalidInputError,
    MemsvcError,
    RecordNotFound,
    StoreError,
    TimestampError,
)
from memsvc.models import ChatEvent, Hit, MemoryRecord, VideoEvent
from memsvc.sdk import AsyncMemory, Memory

__version__ = "0.1.0"

__all__ = [
    "AsyncMemory",
    "ChatEvent",
    "ConfigError",
    "Hit",
    "InvalidInputError",
    "Level",
    "Memory",
    "MemoryRecord",
    "MemsvcError",
    "RecordNotFound",
    "Settings",
    "StoreError",
    "TimestampError",
    "VideoEvent",
    "__version__",
    "exceptions",
]
