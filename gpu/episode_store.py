"""Episode KV store: prefill a memory episode once, keep its (compressed) KV on disk, answer from it later.

The ReKV / CacheGen idea for memsvc: an episode's text is fixed once it is closed, so the LLM's KV cache
for it can be computed once (optionally pruned by a press and/or quantized), saved, and reused as the
prefix of every later question about that episode — no re-prefill, time-to-first-token is a disk read
plus the question's forward.

Layout: ``<root>/<sha256(unit_id)[:20]>/<content_hash[:16]>-<spec_hash[:12]>.safetensors``; one file per
(episode text, model, dtype, press) combination. Each file holds per layer ``layers.<i>.keys``,
``.values``, ``.positions`` (the kept logical positions, int32 ``[batch, kv_heads, kept]``) and any
quantization tensors, plus JSON metadata in the safetensors header (key ``memsvc_episode_kv``): format
version, unit id, model id and revision, dtype, layer count, kv heads, head dim, sha256 of the token
ids, content hash, logical length, press spec, per-layer kind/kept counts, creation time.

Invalidation (the delete cascade; the torch-free half lives in :mod:`memsvc.gpu.kv_files`):

* **changed text** — entries are keyed by unit id + content hash; ``get``/``put`` for a unit with a new
  content hash delete every file of that unit made from another text;
* **changed or deleted unit** — ``MemoryService`` tells the store's directory through
  :class:`~memsvc.gpu.kv_files.EpisodeKVInvalidator` (a ``memsvc.listeners.UnitListener``, installed when
  ``settings.gpu.episode_kv_dir`` is set) on ``delete``, ``delete_user``, ``delete_stream`` and the
  consolidation jobs that rewrite or remove units. :meth:`EpisodeKVStore.load` then raises
  :class:`~memsvc.exceptions.KVCacheInvalidated`, and ``put`` refuses a deleted unit or a rewritten text.

Loading returns tensors bit-identical to those saved.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers.cache_utils import DynamicCache

from memsvc.exceptions import RecordNotFound
from memsvc.gpu.cache import CompressedLayer, as_compressed, layer_from_tensors, make_cache
from memsvc.gpu.kv_files import META_KEY, EpisodeKVFiles

__all__ = ["EpisodeKVStore", "StoredEpisode"]

FORMAT_VERSION = 1


@dataclass
class StoredEpisode:
    """A loaded episode cache and its metadata."""

    cache: DynamicCache
    meta: dict[str, Any]
    path: Path


class EpisodeKVStore(EpisodeKVFiles):
    """Prefilled episode caches on local disk, one model per store instance.

    Args:
        root: directory holding the store (created on demand).
        model_id: name or path of the model the caches belong to.
        revision: model revision/commit (part of the key).
    """

    def __init__(self, root: Path | str, model_id: str, revision: str | None = None):
        super().__init__(root)
        self.model_id = model_id
        self.revision = revision or ""

    # -- keys -----------------------------------------------------------------------------------
    def _spec_hash(self, press_spec: str, dtype: str) -> str:
        return self.content_hash(json.dumps([self.model_id, self.revision, dtype, press_spec]))[:12]

    def path_for(self, unit_id: str, content_hash: str, press_spec: str, dtype: str) -> Path:
        """Where the entry for this unit, text, press and dtype lives."""
        return (
            self._unit_dir(unit_id) / f"{content_hash[:16]}-{self._spec_hash(press_spec, dtype)}.safetensors"
        )

    def _drop_stale(self, unit_id: str, content_hash: str) -> int:
        d = self._unit_dir(unit_id)
        removed = 0
        if d.is_dir():
            for f in d.glob("*.safetensors"):
                if not f.name.startswith(content_hash[:16] + "-"):
                    f.unlink(missing_ok=True)
                    removed += 1
        return removed

    # -- write ----------------------------------------------------------------------------------
    def put(
        self,
        unit_id: str,
        cache: DynamicCache,
        *,
        content_hash: str,
        token_ids: Sequence[int] | torch.Tensor,
        press_spec: str = "none",
        scope: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Persist ``cache`` (a prefill of ``token_ids``, possibly compressed) for ``unit_id``.

        Replaces entries of the unit made from another text. Written atomically (temp file + rename).
        ``scope`` (e.g. ``"<tenant>/<user>"``) lets :meth:`invalidate_scope` find the entry later.
        Raises ``KVCacheInvalidated`` for a deleted unit or a text its unit no longer has.
        """
        self.check_store(unit_id, content_hash)
        layers = [as_compressed(layer) for layer in cache.layers]
        tensors: dict[str, torch.Tensor] = {}
        layer_meta = []
        for i, layer in enumerate(layers):
            for name, t in layer.to_tensors().items():
                tensors[f"layers.{i}.{name}"] = t.detach().contiguous()
            layer_meta.append({**layer.to_meta(), "kept": layer.physical_length()})
        ids = token_ids.flatten().tolist() if isinstance(token_ids, torch.Tensor) else list(token_ids)
        first = layers[0]
        dtype = str(first.dtype).removeprefix("torch.")
        meta = {
            "format": FORMAT_VERSION,
            "unit_id": str(unit_id),
            "model_id": self.model_id,
            "revision": self.revision,
            "dtype": dtype,
            "num_layers": len(layers),
            "kv_heads": int(first.keys.shape[1]),
            "head_dim": int(first.keys.shape[-1]),
            "token_ids_sha256": self.content_hash(ids),
            "content_hash": content_hash,
            "logical_length": first.logical_length,
            "press": press_spec,
            "scope": scope,
            "layers": layer_meta,
            "created_at": time.time(),
            **(extra or {}),
        }
        self._drop_stale(unit_id, content_hash)
        path = self.path_for(unit_id, content_hash, press_spec, dtype)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={META_KEY: json.dumps(meta)})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._restored(unit_id, content_hash)
        return path

    # -- read -----------------------------------------------------------------------------------
    def get(
        self,
        unit_id: str,
        *,
        content_hash: str,
        press_spec: str = "none",
        dtype: torch.dtype | str = "float32",
        device: str | torch.device = "cpu",
    ) -> StoredEpisode | None:
        """The stored cache for this unit/text/press/dtype, or ``None``. Stale entries of the unit (other
        texts) are deleted on the way."""
        tomb = self.tombstone(unit_id)
        if tomb is not None and tomb.get("final"):
            return None
        self._drop_stale(unit_id, content_hash)
        dt = str(dtype).removeprefix("torch.")
        path = self.path_for(unit_id, content_hash, press_spec, dt)
        if not path.exists():
            return None
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = json.loads((f.metadata() or {})[META_KEY])
            for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensors[name] = f.get_tensor(name)
        if (meta.get("model_id"), meta.get("revision"), meta.get("content_hash")) != (
            self.model_id,
            self.revision,
            content_hash,
        ):
            return None
        layers: list[CompressedLayer] = []
        for i, lm in enumerate(meta["layers"]):
            prefix = f"layers.{i}."
            own = {k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}
            layers.append(layer_from_tensors(own, lm))
        return StoredEpisode(make_cache(list(layers)), meta, path)

    def load(
        self,
        unit_id: str,
        *,
        content_hash: str,
        press_spec: str = "none",
        dtype: torch.dtype | str = "float32",
        device: str | torch.device = "cpu",
    ) -> StoredEpisode:
        """Like :meth:`get`, but raises: ``KVCacheInvalidated`` when the unit was deleted or this text's
        cache was invalidated, ``RecordNotFound`` when nothing was ever stored for it."""
        hit = self.get(unit_id, content_hash=content_hash, press_spec=press_spec, dtype=dtype, device=device)
        if hit is None:
            self.check_load(unit_id, content_hash)
            raise RecordNotFound(f"no stored KV cache for unit {unit_id!r} with this text, press and dtype")
        return hit
