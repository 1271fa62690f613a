"""REST service settings (``memsvc serve``): limits, worker threads, idempotency and rate limits.

Read from the environment with the prefix ``MEMSVC_API__`` (e.g. ``MEMSVC_API__MAX_BODY_BYTES``), so
the same variables that nest under ``Settings`` name them; explicit arguments win.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["ApiConfig"]


class ApiConfig(BaseSettings):
    """Limits and knobs of the HTTP layer (the SDK's own ``Settings.limits`` still apply beneath)."""

    model_config = SettingsConfigDict(env_prefix="MEMSVC_API__", extra="forbid")

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body; a bigger one is refused with 413 before it is read in full."""
    max_batch: int = Field(default=1_000, ge=1)
    """Most messages, frames or events in one write request (422 above)."""
    max_text_chars: int = Field(default=32_000, ge=1)
    """Longest message, caption or query text (422 above); the SDK limit applies too."""
    max_limit: int = Field(default=100, ge=1)
    """Largest ``limit`` for search; history pages are capped at ``max_page``."""
    max_page: int = Field(default=1_000, ge=1)
    workers: int = Field(default=8, ge=1, le=256)
    """Threads that run blocking store and model calls; more requests wait for a free one."""
    idempotency_ttl_s: float = Field(default=24 * 3600.0, gt=0)
    """How long a completed ``Idempotency-Key`` replays its first response."""
    idempotency_pending_s: float = Field(default=300.0, gt=0)
    """A claim still pending after this long (its request died) may be taken over by a retry."""
    rate_per_s: float = Field(default=0.0, ge=0)
    """Sustained requests per second per API key (token bucket); 0 disables the limit."""
    rate_burst: int = Field(default=100, ge=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit arguments win over environment variables; no dotenv or secret files."""
        return (init_settings, env_settings)
