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
    "EmbedderConfig",
    "LimitsConfig",
    "RetrievalConfig",
    "SegmenterConfig",
    "Settings",
    "VectorConfig",
    "VideoConfig",
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

    backend: str = "boundary"


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


class VideoConfig(BaseModel):
    """Video memory: scene segmentation, compression and the frame-space index.

    ``segmenter`` options go to ``memsvc.segmenters.video.SceneSegmenter``; ``image_embedder`` picks an
    image embedder (``none``, ``pixels``, ``clip`` with ``{"model": name or path}``) used for frames sent
    as images and, when it shares a space with text (CLIP), for text queries against frame vectors.
    """

    segmenter: dict[str, Any] = Field(default_factory=dict)
    image_embedder: ComponentConfig = Field(default_factory=lambda: ComponentConfig(backend="none"))
    frame_backend: str | None = None
    """Vector backend of the frame-space index (one per embedding size); default: ``vector.backend``."""
    buffer_frames: int = 16
    """Short-term memory: representatives an open scene keeps before merging the closest adjacent pair."""
    frames_per_rep: int = 300
    """A closed scene keeps one representative vector per this many frames ..."""
    max_reps: int = 4
    """... and at most this many (MovieChat-style merging of the most similar adjacent frames)."""
    max_captions: int = 12
    """Distinct captions kept per scene (near-duplicates merged, rarest dropped first)."""
    caption_tokens: int = 120
    """Token budget of a scene's merged caption text."""
    caption_dedup: float = 0.9
    """Captions whose text vectors are at least this similar count as one."""
    keep_frame_embeddings: Literal["all", "representatives"] = "representatives"
    """``representatives``: a frame's raw embedding stays in the online state until its scene closes, then
    only the representative frames' (unit-normalised) embeddings are written to their events; ``all``
    stores every frame's embedding."""


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
    video: VideoConfig = Field(default_factory=VideoConfig)

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
