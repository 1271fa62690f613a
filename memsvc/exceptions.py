"""Typed errors raised by memsvc.

Hierarchy::

    MemsvcError
    ├── ConfigError (ValueError)            bad settings, unknown backend names
    ├── MissingDependencyError (ImportError) an optional extra is not installed
    ├── InvalidInputError (ValueError)       bad arguments to the SDK; nothing was stored
    │   ├── EmptyTextError
    │   ├── TextTooLongError
    │   ├── TimestampError                   naive/aware mix, unparsable or out-of-range times
    │   └── EmbeddingError                   wrong dimension, NaN/inf
    ├── StoreError                           a storage backend failed
    │   ├── StoreUnavailable                 (retryable) the backend cannot be reached
    │   ├── RecordNotFound (KeyError)        an id that does not exist for this tenant/user
    │   │   └── KVCacheInvalidated           a stored episode KV cache whose unit changed or was deleted
    │   └── IndexMismatchError               a vector index built by another embedder/dimension
    ├── CompressionError
    ├── SegmentationError
    └── ModelError                           a model failed to load or run
        └── GPUOutOfMemory (retryable)

``is_retryable`` tells workers which errors are worth retrying.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CompressionError",
    "ConfigError",
    "EmbeddingError",
    "EmptyTextError",
    "GPUOutOfMemory",
    "IndexMismatchError",
    "InvalidInputError",
    "KVCacheInvalidated",
    "MemsvcError",
    "MissingDependencyError",
    "ModelError",
    "RecordNotFound",
    "SegmentationError",
    "StoreError",
    "StoreUnavailable",
    "TextTooLongError",
    "TimestampError",
]


class MemsvcError(Exception):
    """Base class of every error memsvc raises on purpose."""

    is_retryable: ClassVar[bool] = False


class ConfigError(MemsvcError, ValueError):
    """Invalid configuration: unknown backend, bad option value."""


class MissingDependencyError(MemsvcError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class InvalidInputError(MemsvcError, ValueError):
    """The caller passed bad input. Nothing was written."""


class EmptyTextError(InvalidInputError):
    """A message or caption has no text."""


class TextTooLongError(InvalidInputError):
    """A text exceeds the configured maximum length."""


class TimestampError(InvalidInputError):
    """A timestamp is naive where aware ones are used (or the reverse), unparsable or out of range."""


class EmbeddingError(InvalidInputError):
    """An embedding has the wrong shape or holds NaN/inf."""


class StoreError(MemsvcError):
    """A storage backend failed."""


class StoreUnavailable(StoreError):
    """The backend could not be reached; retrying later may succeed."""

    is_retryable: ClassVar[bool] = True


class RecordNotFound(StoreError, KeyError):
    """No record with that id exists in the caller's tenant and user scope."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the plain message
        return str(self.args[0]) if self.args else "record not found"


class KVCacheInvalidated(RecordNotFound):
    """A stored episode KV cache was invalidated: its memory unit was deleted (for good), or its text
    changed (the cache of the old text is gone; a new one may be stored for the new text)."""


class IndexMismatchError(StoreError):
    """The vector index was built with another embedder or dimension than the one configured."""


class CompressionError(MemsvcError):
    """A compressor failed."""


class SegmentationError(MemsvcError):
    """A segmenter failed or returned invalid boundaries."""


class ModelError(MemsvcError):
    """A model failed to load or run."""


class GPUOutOfMemory(ModelError):
    """The accelerator ran out of memory; retrying with a smaller batch may succeed."""

    is_retryable: ClassVar[bool] = True
