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

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = [
    "CompressorConfig",
    "ConsolidationConfig",
    "DecayConfig",
    "EmbedderConfig",
    "GPUConfig",
    "LexicalConfig",
    "LimitsConfig",
    "RetrievalConfig",
    "SegmenterConfig",
    "Settings",
    "VectorConfig",
    "VideoConfig",
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

    backend: str = "boundary"


class CompressorConfig(ComponentConfig):
    """Prompt compression in the write path. When any of ``denoise``, ``returns="compressed"`` or
    ``lexical="compressed"`` is set, each chat turn is compressed by ``backend`` at ``rate`` when stored;
    the original text stays the unit's text. ``denoise`` (SeCom's compression as denoising): the turn's
    vector, and the episode centroid built from it, is the embedding of the compressed text.
    ``returns="compressed"``: search, context and hits carry the compressed text (more fits a budget).

        Settings(compressor={"denoise": True})           # selfinfo at 0.7: vectors blend in the compressed text (0.2)
        Settings(compressor={"returns": "compressed"})   # original vectors, compressed text returned

    The compressed text is stored on the unit (``meta.compressed_text``) with the compressor's name and
    version (``units.compressor``); changing these settings applies to new writes, and to stored units
    after ``memsvc doctor --reindex``."""

    backend: str = "selfinfo"
    denoise: bool = False
    """Embed the compressed turn text (blended by ``denoise_mix``). Off by default: no measured gain (docs/COMPRESSION_NOTES.md)."""
    denoise_mix: float = Field(default=0.2, ge=0.0, le=1.0)
    """With ``denoise``: weight of the compressed text's embedding in a turn's vector (the rest is the
    original text's embedding); 1 = the compressed text alone (SeCom), which lowered LoCoMo recall by up
    to 2.5 points; 0.2 leaves it unchanged within ±0.3 (docs/COMPRESSION_NOTES.md)."""
    rate: float = Field(default=0.7, gt=0.0, le=1.0)
    """Share of cl100k tokens kept."""
    returns: Literal["original", "compressed"] = "original"
    """Which text search, context and hits return for compressed units."""
    lexical: Literal["original", "compressed"] = "original"
    """Which text the keyword (BM25) index holds for compressed units."""

    @property
    def active(self) -> bool:
        """Whether turns are compressed when stored."""
        return self.denoise or self.returns == "compressed" or self.lexical == "compressed"


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
    role_weight: float = 0.5
    """Added to the turns of the party a question is about when a memory holds both ``user`` and
    ``assistant`` turns: the user's own turns for a first-person question ("where did I ..."), the
    assistant's for one about what it said ("you recommended", "our previous conversation")."""
    temporal_weight: float = 0.5
    """Weight of the temporal score when the query states a time (MRAG semantic + temporal)."""
    recency_weight: float = 0.3
    """Weight of recency (0 for the oldest candidate, 1 for the newest); used when the query asks for the
    current or latest state, or always when ``recency_always``."""
    recency_always: bool = False
    episode_fill: float = 0.5
    """When packed turns make up at least this share of an episode, the whole episode replaces them
    if it fits (above 1: never)."""
    cost_exponent: float = Field(default=0.5, ge=0.0)
    """Packing by value per token: a hit longer than ``cost_floor_tokens`` is packed in the order of
    ``score * (cost_floor_tokens / tokens) ** cost_exponent`` (0: plain rank order); turns of the party
    the question is about (``role_weight``) are not discounted."""
    cost_floor_tokens: int = Field(default=128, ge=1)
    """Hits up to this many tokens keep their rank order under ``cost_exponent``."""
    annotate_dates: bool = True
    """Write absolute dates next to relative expressions in stored turns ("yesterday [2023-05-07]")."""
    superseded_weight: float = 0.5
    """Score multiplier for a unit whose validity ended (a newer fact superseded it)."""
    contiguity: int = Field(default=0, ge=0, le=8)
    """EM-LLM contiguity: the best turn hits bring this many session neighbours on each side right
    behind them in the ranking (0: off)."""
    contiguity_top: int = Field(default=5, ge=1)
    """How many of the best turn hits bring their neighbours."""
    contiguity_decay: float = Field(default=0.9, gt=0, le=1)
    """A neighbour d turns away scores ``decay ** d`` × the hit's score (kept in ``components``)."""
    reranker: ComponentConfig = Field(default_factory=lambda: ComponentConfig(backend="none"))
    """Second stage over the best fused hits: ``none``, ``mmr`` (``{"lambda": 0.7}``) or ``cross-encoder``
    (``{"model": path, "mix": 1.0}``); see ``memsvc.retrieval.rerank``."""
    rerank_top: int = Field(default=50, ge=1)
    """How many of the best fused hits the reranker reorders."""
    hydrate_min: int = Field(default=50, ge=1)
    """Every candidate is scored, but only the best ones are read whole (text, metadata, sources):
    at least this many, or 4 × ``limit`` without a budget ..."""
    hydrate_per_1k_tokens: int = Field(default=250, ge=1)
    """... and this many per 1,000 budget tokens with one (a packed turn costs 20+ tokens, so the
    packer never runs out of hits before the budget does)."""


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
    summaries_replace_episodes: bool = False
    """Off by default: with the hybrid ranker it cost 1.8 points of LoCoMo recall@1000 (conv 0). When on,
    once an episode has its summary, the summary stands for it in the index (the episode stays in
    SQL for history, expansion and rebuilds; its turns stay indexed)."""
    turn_extracts: bool = True
    """Store each chat turn's extract (its line in an extractive summary: most informative sentences,
    verbatim) and pack a turn hit as its extract when that is shorter (``consolidation.extracts``)."""
    episode_extracts: bool = False
    """Also pack a whole episode (the packer's episode fill) as its turns' extracts."""
    extract_keep_share: float = Field(0.8, gt=0.0, le=1.0)
    """Share of a turn's informative words its extract keeps."""
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


class GPUConfig(BaseModel):
    """The answering LLM (``memsvc.gpu``): a local transformers model with a compressed KV cache, or an
    external OpenAI-compatible server (vLLM, SGLang) when ``base_url`` is set. With neither, the REST
    app serves no ``/v1/chat/completions``.

        Settings(gpu={"model": "Qwen/Qwen2.5-0.5B-Instruct", "press": "snapkv", "compression_ratio": 0.75})
        MEMSVC_GPU__MODEL=/models/qwen MEMSVC_GPU__KV_BITS=4 MEMSVC_GPU__EPISODE_KV_DIR=/var/memsvc/kv
        MEMSVC_GPU__BASE_URL=http://gpu-host:8001/v1 MEMSVC_GPU__MODEL=Qwen/Qwen2.5-7B-Instruct
    """

    model: str | None = None
    """Hugging Face name or local path of a causal LM; with ``base_url``, the model name on that server."""
    revision: str | None = None
    """Model revision (recorded with stored episode caches)."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:<n>``."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """``auto``: bfloat16 on CUDA, float32 on CPU."""
    press: str | None = None
    """KV press from ``memsvc.gpu.policies.PRESSES`` (``snapkv``, ``expected_attention``, ``knorm``,
    ``streaming_llm``); None keeps the full cache."""
    compression_ratio: float = Field(default=0.5, ge=0.0, lt=1.0)
    """Share of the memory prefix's KV the press drops."""
    press_options: dict[str, Any] = Field(default_factory=dict)
    """Other press parameters, e.g. ``{"window_size": 32}``."""
    kv_bits: int | None = None
    """KIVI quantization of the (pruned) KV cache to this many bits; None keeps 16/32-bit values."""
    query_aware: bool = False
    """Prefill the question with the memory (best for ``snapkv``) instead of after compression."""
    episode_kv_dir: Path | None = None
    """Directory of the episode KV store. When set, every process (API, worker, SDK) invalidates its
    entries on deletes and consolidation, with or without a GPU."""
    max_new_tokens: int = Field(default=256, ge=1)
    """Completion length when a request sets none."""
    budget_tokens: int = Field(default=1000, ge=1)
    """Memory context budget per chat request (``Memory.context``)."""
    system_prompt: str | None = None
    """Instruction that opens every prompt (default: the runtime's memory-assistant prompt)."""
    base_url: str | None = None
    """An external OpenAI-compatible server (``http://host:port/v1``) that answers instead of a local
    model; memsvc adds the memory context and forwards the chat request (prefix caching happens there)."""
    api_key: SecretStr | None = None
    """Bearer key for ``base_url``."""
    timeout_s: float = Field(default=300.0, gt=0)
    """Request timeout towards ``base_url``."""

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        head, _, idx = v.partition(":")
        if head not in ("auto", "cpu", "cuda") or (idx and (head != "cuda" or not idx.isdigit())):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:<n>, not {v!r}")
        return v

    @field_validator("kv_bits")
    @classmethod
    def _bits(cls, v: int | None) -> int | None:
        if v is not None and v not in (2, 4, 8):
            raise ValueError(f"kv_bits must be 2, 4 or 8, not {v}")
        return v

    @model_validator(mode="after")
    def _remote_needs_model(self) -> GPUConfig:
        if self.base_url is not None and not self.model:
            raise ValueError("gpu.base_url needs gpu.model (the model name on that server)")
        return self

    @property
    def enabled(self) -> bool:
        """Whether an answering model is configured (local or remote)."""
        return bool(self.model)


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
    consolidation: ConsolidationConfig = Field(default_factory=ConsolidationConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    gpu: GPUConfig = Field(default_factory=GPUConfig)

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
