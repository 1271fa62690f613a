"""ONNX Runtime inference for sentence-transformers models on the CPU: the same vectors, 2-3x faster.

The first time a model is used, the whole sentence-transformers pipeline (transformer, pooling, any
dense layer) is exported with ``torch.onnx`` into a cache folder keyed by the model's files; the export
is checked against the torch model on probe texts (max abs difference <= 1e-4, else refused) and
published with an atomic rename, so concurrent processes never read half a file. Later processes load
only ``onnxruntime`` and the fast tokenizer: no torch import, and a short query embeds in ~2.5 ms
instead of ~8 ms (MiniLM, 2 cores; docs/BENCHMARKS.md).

Tokenization follows sentence-transformers: the model's fast tokenizer, truncation at the model's
``max_seq_length``, padding to the longest text of a batch, lower-casing when the model asks for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memsvc.exceptions import MissingDependencyError, ModelError

__all__ = ["OnnxEncoder", "default_cache_dir", "model_dir", "onnx_available"]

log = logging.getLogger(__name__)

_FORMAT = 1
"""Bumped whenever the exported files change meaning (the cache key includes it)."""
_TOLERANCE = 1e-4
_PROBES = [
    "hello",
    "Caroline: I went to a LGBTQ support group yesterday and it was so powerful.",
    "a much longer probe text " * 40,
    "数字 123, émigré — naïve café!",
]
_LOCK = threading.Lock()


def onnx_available() -> bool:
    """Whether onnxruntime and the fast tokenizers library can be imported."""
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


def default_cache_dir() -> Path:
    """``$MEMSVC_CACHE_DIR`` or ``$XDG_CACHE_HOME/memsvc`` (``~/.cache/memsvc``), plus ``onnx``."""
    root = os.environ.get("MEMSVC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "memsvc")
    return Path(root) / "onnx"


def model_dir(model: str) -> Path | None:
    """The local folder holding ``model`` (a path, or a hub name already in the local HF cache)."""
    p = Path(model)
    if p.is_dir():
        return p.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True)).resolve()
    except Exception:  # not cached, not a hub name: the torch path resolves it (or fails clearly)
        return None


def _key(folder: Path) -> str:
    """Hash of the model's files (names, sizes, modification times) and the export format."""
    h = hashlib.sha256(f"memsvc-onnx/{_FORMAT}/{folder}".encode())
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


class OnnxEncoder:
    """Embeds texts with an exported model: ``encode(texts) -> float32 (n, dim)``, not normalised."""

    def __init__(self, folder: Path, threads: int = 0, spin: bool = False) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError("pip install onnxruntime tokenizers") from exc
        meta = json.loads((folder / "meta.json").read_text())
        self.folder = folder
        self.inputs: list[str] = list(meta["inputs"])
        self.dim = int(meta["dim"])
        self.lower = bool(meta.get("do_lower_case", False))
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.enable_truncation(max_length=int(meta["max_seq_length"]))
        tok.enable_padding(pad_id=int(meta["pad_id"]), pad_token=str(meta["pad_token"]))
        self._tok = tok
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(0, int(threads))
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        # Idle pool threads spin-wait by default, holding the cores that the store queries right after
        # an embedding need: off unless asked for.
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self._session = ort.InferenceSession(str(folder / "model.onnx"), so, providers=["CPUExecutionProvider"])

    def _feeds(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encs = self._tok.encode_batch([t.lower() if self.lower else t for t in texts])
        cols = {
            "input_ids": [e.ids for e in encs],
            "attention_mask": [e.attention_mask for e in encs],
            "token_type_ids": [e.type_ids for e in encs],
        }
        return {name: np.asarray(cols[name], dtype=np.int64) for name in self.inputs}

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Raw sentence embeddings, in input order; batches hold texts of similar length (less padding)."""
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            (emb,) = self._session.run(["embedding"], self._feeds([texts[i] for i in idx]))
            out[idx] = emb
        return out


def load_or_export(model: str, st_loader: Any, cache_dir: Path | None = None, threads: int = 0) -> OnnxEncoder | None:
    """The cached export of ``model`` (exported now when missing); None when the model's files cannot
    be located locally. ``st_loader()`` returns the loaded sentence-transformers model (only called to
    export). Raises ``ModelError`` when the export fails or does not reproduce the torch vectors."""
    folder = model_dir(model)
    if folder is None:
        return None
    target = (cache_dir or default_cache_dir()) / _key(folder)
    with _LOCK:
        if not (target / "meta.json").is_file():
            _export(st_loader(), target)
    return OnnxEncoder(target, threads)


def _export(st: Any, target: Path) -> None:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - sentence-transformers needs torch
        raise MissingDependencyError("pip install torch (needed once, to export the model to ONNX)") from exc
    tokenizer = st.tokenizer
    fast = getattr(tokenizer, "backend_tokenizer", None)
    if fast is None:
        raise ModelError("the model has no fast tokenizer; use embedder option runtime='torch'")
    prep = getattr(st, "preprocess", None) or st.tokenize  # sentence-transformers >= 6: preprocess
    sample = prep(_PROBES[:2])
    inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]
    extra = {k: v for k, v in sample.items() if k not in inputs and not isinstance(v, torch.Tensor)}
    if inputs[:2] != ["input_ids", "attention_mask"]:
        raise ModelError(f"cannot export a model whose tokenizer gives {sorted(sample)}")

    class _Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors: Any) -> Any:
            return self.st({**extra, **dict(zip(inputs, tensors, strict=True))})["sentence_embedding"]

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        was_training = st.training
        st.eval()
        axes = {name: {0: "batch", 1: "tokens"} for name in inputs}
        axes["embedding"] = {0: "batch"}
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for every input
            torch.onnx.export(
                _Pipeline(), tuple(sample[k] for k in inputs), str(tmp / "model.onnx"), input_names=inputs,
                output_names=["embedding"], dynamic_axes=axes, opset_version=17, dynamo=False,
            )
        st.train(was_training)
        first = st._first_module()
        pad = tokenizer.pad_token or "[PAD]"
        fast.save(str(tmp / "tokenizer.json"))
        meta = {
            "format": _FORMAT, "inputs": inputs, "dim": int((getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()),
            "max_seq_length": int(st.max_seq_length or tokenizer.model_max_length),
            "do_lower_case": bool(getattr(first, "do_lower_case", False)),
            "pad_id": int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0), "pad_token": pad,
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        _check(st, OnnxEncoder(tmp))
        try:
            tmp.rename(target)
        except OSError:  # another process published it first: theirs is the same export
            if not (target / "meta.json").is_file():
                raise
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"ONNX export failed: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s to ONNX at %s", type(st).__name__, target)


def _check(st: Any, enc: OnnxEncoder) -> None:
    want = st.encode(_PROBES, convert_to_numpy=True, show_progress_bar=False)
    got = enc.encode(_PROBES)
    diff = float(np.abs(np.asarray(want, dtype=np.float32) - got).max())
    if not diff <= _TOLERANCE:
        raise ModelError(f"the ONNX export differs from the torch model by {diff:.2e} (> {_TOLERANCE}); "
                         "use embedder option runtime='torch'")
