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
    "LexicalConfig",
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


class LexicalConfig(ComponentConfig):
    """Keyword (BM25) index over unit texts: ``qdrant-edge`` (embedded shard under ``data_dir``),
    ``memory`` (the in-process reference) or ``none`` (dense retrieval only)."""

    backend: str = "qdrant-edge"


class RetrievalConfig(BaseModel):
    """Candidate generation, fusion and packing (see ``memsvc.retrieval.hybrid``)."""

    candidates: int = 200
    """How many candidates each index returns before fusion and packing."""
    default_limit: int = 10
    separator: str = "\n"
    """Joins packed lines in ``Memory.context``; counted against the budget."""
    dense_floor: float = 0.1
    """Cosine treated as "no match": the dense part is (cos - floor) / (best cos - floor), at least 0."""
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    """Weight of BM25 over the unit's own text (divided by the best BM25 of the query)."""
    context_weight: float = 0.3
    """Weight of BM25 over context windows (a turn with the turns before it), given to every turn in the
    best window holding it: words of a question and of its answer match together."""
    episode_weight: float = 0.5
    """Weight of the turn's episode score (its dense + lexical parts, 0..2): the topic it belongs to."""
    speaker_weight: float = 0.2
    """Added to turns whose speaker the query names."""
    temporal_weight: float = 0.5
    """Weight of the temporal score when the query states a time (MRAG semantic + temporal)."""
    recency_weight: float = 0.3
    """Weight of recency (0 for the oldest candidate, 1 for the newest); used when the query asks for the
    current or latest state, or always when ``recency_always``."""
    recency_always: bool = False
    episode_fill: float = 0.5
    """When packed turns make up at least this share of an episode, the whole episode replaces them
    if it fits (above 1: never)."""
    annotate_dates: bool = True
    """Write absolute dates next to relative expressions in stored turns ("yesterday [2023-05-07]")."""


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
    lexical: LexicalConfig = Field(default_factory=LexicalConfig)
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
    def lexical_path(self) -> Path:
        """Where the embedded lexical (BM25) shard lives."""
        return self.data_dir / "lexical"

    @property
    def vector_path(self) -> Path:
        """Where the embedded vector shard lives."""
        return self.data_dir / "vectors"
