"""Typed settings for every entry point (SDK, CLI, worker, API).

Built once per entry point and passed down; there is no module-level singleton. Environment variables
use the prefix ``MEMSVC_`` and ``__`` for nesting, e.g. ``MEMSVC_EMBEDDER__BACKEND=fake`` or
``MEMSVC_VECTOR__QUANTIZATION=int8``.

Profiles:
    embedded (default): SQLite file + qdrant-edge shard under ``data_dir``, all in one process.
    service: ``database_url`` (PostgreSQL), ``vector.url`` (a Qdrant server), ``broker_url`` (Celery).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = [
    "ConsolidationConfig",
    "DecayConfig",
    "EmbedderConfig",
    "LimitsConfig",
    "RetrievalConfig",
    "SegmenterConfig",
    "Settings",
    "VectorConfig",
    "WorkerConfig",
    "default_data_dir",
]


def default_data_dir() -> Path:
    """``~/.memsvc``: where the embedded profile keeps its files unless told otherwise."""
    return Path.home() / ".memsvc"


class ComponentConfig(BaseModel):
    """A backend chosen by registry name plus its keyword options."""

    backend: str
    options: dict[str, Any] = Field(default_factory=dict)


class EmbedderConfig(ComponentConfig):
    """Text embedder. Default: the packaged all-MiniLM-L6-v2 through sentence-transformers."""

    backend: str = "sentence-transformers"


class SegmenterConfig(ComponentConfig):
    """Online conversation segmenter that groups turns into episodes."""

    backend: str = "similarity"


class CompressorConfig(ComponentConfig):
    """Prompt compressor applied to episode text before it is embedded (``none`` keeps text as is)."""

    backend: str = "none"


class VectorConfig(ComponentConfig):
    """Vector index. ``qdrant-edge`` (embedded), ``qdrant`` (server or local mode) or ``memory``."""

    backend: str = "qdrant-edge"
    url: str | None = None
    """Qdrant server URL for the ``qdrant`` backend (service profile)."""
    collection: str = "memsvc"
    quantization: Literal["none", "int8", "binary"] = "none"
    """Vector quantization in the index; full vectors are kept for rescoring."""
    hnsw_threshold: int = 20_000
    """The embedded shard builds its HNSW index once it holds this many points (brute force below)."""


class RetrievalConfig(BaseModel):
    """Candidate generation and packing defaults."""

    candidates: int = 200
    """How many candidates each index returns before fusion and packing."""
    default_limit: int = 10
    separator: str = "\n"
    """Joins packed units in ``Memory.context``; counted against the budget."""


class LimitsConfig(BaseModel):
    """Input limits; a request over them raises a typed error and stores nothing."""

    max_text_chars: int = 32_000
    max_batch: int = 10_000
    max_query_chars: int = 4_000


class SummarizerConfig(ComponentConfig):
    """Summarizer used by consolidation: ``extractive`` (offline, default) or ``langchain`` (any
    LangChain ``BaseChatModel``; ``options={"model": "pkg.module:factory", ...}``)."""

    backend: str = "extractive"


class DecayConfig(BaseModel):
    """Forgetting: retention R = importance * exp(-t / S) with t the days since a unit was stored or
    last retrieved and S = strength * ``strength_days`` (strength grows by ``strength_growth`` per
    retrieval). Below ``compress_below`` a unit is compressed, below ``forget_below`` soft-deleted,
    and ``grace_days`` after that hard-deleted. Pinned units never decay.

        Settings(consolidation={"decay": {"enabled": True, "strength_days": 60}})
        Settings(consolidation={"tenants": {"acme": {"decay": {"enabled": False}}}})
    """

    enabled: bool = True
    strength_days: float = 90.0
    strength_growth: float = 1.0
    compress_below: float = 0.05
    compress_rate: float = 0.5
    """Share of tokens kept when a fading unit is compressed."""
    forget_below: float = 0.01
    grace_days: float = 30.0
    levels: tuple[str, ...] = ("turn", "episode", "summary", "semantic")


class ConsolidationConfig(BaseModel):
    """What the consolidation jobs do and how often (beat schedule and the embedded scheduler)."""

    summarizer: SummarizerConfig = Field(default_factory=SummarizerConfig)
    summary_ratio: float = 0.6
    """Episode summaries keep at most this share of the episode's tokens."""
    summaries_replace_episodes: bool = True
    """Once an episode has its summary, the summary stands for it in the index (the episode stays in
    SQL for history, expansion and rebuilds; its turns stay indexed)."""
    semantic_memories: tuple[str, ...] = ("daily", "topic")
    """Which semantic memories to build from episode summaries."""
    semantic_tokens: int = 160
    """Token budget of one daily/topic semantic memory."""
    topic_threshold: float = 0.6
    """Cosine similarity above which episode summaries of different days join one topic."""
    budget_tokens_per_user: int = 200_000
    """Source tokens one user may have summarized per run (bounds LLM cost); the rest waits."""
    idle_close_s: float = 1800.0
    dedupe_threshold: float = 0.95
    """Cosine similarity from which two units of one user and speaker are near-duplicates."""
    dedupe_window_days: float = 7.0
    superseded_weight: float = 0.7
    """Score multiplier for a memory whose validity ended (a newer fact contradicts it)."""
    recompress_after_days: float | None = None
    """Re-compress episodes older than this (None: off)."""
    recompress_rate: float = 0.5
    decay: DecayConfig = Field(default_factory=DecayConfig)
    tenants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-tenant overrides of any field above, e.g. ``{"acme": {"decay": {"enabled": False}}}``."""
    embedded_schedule: bool = False
    """Run the jobs on a background thread inside ``Memory`` (embedded profile, no broker)."""
    interval_s: float = 900.0
    """Summaries, dedupe, supersede: how often (beat and embedded scheduler)."""
    decay_interval_s: float = 21_600.0
    reconcile_interval_s: float = 3_600.0

    def for_tenant(self, tenant: str) -> ConsolidationConfig:
        """This config with the tenant's overrides applied."""
        over = self.tenants.get(tenant)
        if not over:
            return self
        data = self.model_dump()
        for k, v in over.items():
            data[k] = {**data[k], **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
        data["tenants"] = {}
        return ConsolidationConfig.model_validate(data)


class WorkerConfig(BaseModel):
    """Celery worker settings (broker: ``Settings.broker_url``, Redis or RabbitMQ)."""

    result_backend: str | None = None
    """Celery result backend URL; None uses the broker URL when it is Redis, else ``rpc://``."""
    soft_time_limit_s: float = 600.0
    time_limit_s: float = 900.0
    lock_timeout_s: float = 960.0
    """Per-user lock lifetime: longer than the hard time limit, so a killed job's lock expires."""
    max_retries: int = 5
    retry_backoff_s: float = 10.0
    visibility_timeout_s: float = 1800.0
    """Redis broker: an unacknowledged task (its worker died) is delivered again after this."""
    consolidation_queue: str = "consolidation"
    indexing_queue: str = "indexing"
    concurrency: int | None = None


class Settings(BaseSettings):
    """All memsvc settings. ``Settings(data_dir=...)`` or env vars ``MEMSVC_*``."""

    model_config = SettingsConfigDict(env_prefix="MEMSVC_", env_nested_delimiter="__", extra="forbid")

    profile: Literal["embedded", "service"] = "embedded"
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<data_dir>/memsvc.db``."""
    broker_url: str = "redis://127.0.0.1:6379/0"
    tenant: str = "default"
    """Tenant used by an SDK instance that is not told otherwise."""
    auto_migrate: bool = True
    """Run Alembic migrations on open (the embedded profile's default)."""
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    segmenter: SegmenterConfig = Field(default_factory=SegmenterConfig)
    compressor: CompressorConfig = Field(default_factory=CompressorConfig)
    vector: VectorConfig = Field(default_factory=VectorConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    consolidation: ConsolidationConfig = Field(default_factory=ConsolidationConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

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

    @property
    def sql_url(self) -> str:
        """The SQLAlchemy URL in force."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'memsvc.db'}"

    @property
    def vector_path(self) -> Path:
        """Where the embedded vector shard lives."""
        return self.data_dir / "vectors"
