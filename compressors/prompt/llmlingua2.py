"""LLMLingua-2 prompt compression through the ``llmlingua`` package (extra ``[llmlingua]``), offline.

llmlingua 0.2.2 needs three shims to run without a model hub; all are scoped to this backend, none
patches site-packages or runs at import time:

* it asks tiktoken for ``gpt-3.5-turbo``'s encoding at construction (a download): while the
  compressor is built, ``tiktoken.encoding_for_model`` resolves to the offline ``cl100k_base`` copy;
* it picks special tokens by substring of the model name (``bert-base-multilingual-cased`` or
  ``xlm-roberta-large``): a model directory whose path lacks both is reached through a symlink whose
  name carries the right one for its ``model_type``;
* the LLMLingua-1 (causal LM) path indexes ``past_key_values`` as tuples, which transformers 5 no
  longer returns; this backend uses only the LLMLingua-2 token-classifier path, so it is not needed.

The classifier keeps words whose keep-probability is above the (100·(1−rate)+1)-th percentile
(LLMLingua-2, Pan et al. 2024), plus ``force_tokens`` and digits.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memsvc.compressors.base import Compressed
from memsvc.exceptions import CompressionError, ConfigError, MissingDependencyError, ModelError
from memsvc.tokens import count_tokens

__all__ = ["LLMLingua2Compressor"]

_MARKERS = {"bert": "bert-base-multilingual-cased", "xlm-roberta": "xlm-roberta-large"}
_LOCK = threading.Lock()
_MAX_FORCE = 100


@contextlib.contextmanager
def _offline_tiktoken() -> Iterator[None]:
    import tiktoken

    from memsvc.tokens import _encoding

    original = tiktoken.encoding_for_model
    tiktoken.encoding_for_model = lambda _name: _encoding()  # type: ignore[assignment]
    try:
        yield
    finally:
        tiktoken.encoding_for_model = original


def _model_name_for_llmlingua(model: str) -> str:
    """A path llmlingua accepts: the model itself if its name already carries a known marker, else a
    symlink named after the marker for its ``model_type``."""
    if any(m in model for m in _MARKERS.values()):
        return model
    cfg_path = Path(model) / "config.json"
    if not cfg_path.exists():
        raise ConfigError(
            f"LLMLingua-2 model {model!r}: give a local directory (no model hub at run time) or a name "
            "containing 'bert-base-multilingual-cased' / 'xlm-roberta-large' that resolves offline"
        )
    model_type = json.loads(cfg_path.read_text()).get("model_type", "")
    marker = _MARKERS.get(model_type)
    if marker is None:
        raise ConfigError(f"LLMLingua-2 supports bert / xlm-roberta classifiers, not {model_type!r}")
    link_dir = Path(tempfile.gettempdir()) / "memsvc-llmlingua"
    link_dir.mkdir(exist_ok=True)
    link = link_dir / f"{abs(hash(str(Path(model).resolve())))}-{marker}"
    if not link.exists():
        with contextlib.suppress(FileExistsError):
            os.symlink(Path(model).resolve(), link, target_is_directory=True)
    return str(link)


@dataclass
class LLMLingua2Compressor:
    """LLMLingua-2 token-classification compressor (model by local path or offline-resolvable name)."""

    model: str = "microsoft/llmlingua-2-xlm-roberta-large-meetingbank"
    device: str = "cpu"
    rate: float = 0.7
    batch_size: int = 50
    force_digits: bool = True
    name: str = field(init=False, default="llmlingua2")
    version: str = field(init=False, default="0.2.2")
    _impl: Any = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0.05 <= self.rate <= 1.0:
            raise ConfigError("rate must be in [0.05, 1.0]")
        self.name = f"llmlingua2:{Path(self.model).name}"

    def _compressor(self) -> Any:
        with _LOCK:
            if self._impl is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                try:
                    from llmlingua import PromptCompressor as _PC
                except ImportError as exc:
                    raise MissingDependencyError("pip install memsvc[llmlingua]") from exc
                name = _model_name_for_llmlingua(self.model)
                try:
                    with _offline_tiktoken():
                        self._impl = _PC(
                            model_name=name, device_map=self.device, use_llmlingua2=True,
                            llmlingua2_config={"max_batch_size": self.batch_size, "max_force_token": _MAX_FORCE},
                        )
                except Exception as exc:
                    raise ModelError(f"cannot load LLMLingua-2 model {self.model!r}: {exc}") from exc
            return self._impl

    def compress(
        self,
        texts: Sequence[str],
        rate: float | None = None,
        target_tokens: int | None = None,
        keep: Sequence[str] = (),
        question: str | None = None,
    ) -> list[Compressed]:
        r = self.rate if rate is None else rate
        if not 0.0 < r <= 1.0:
            raise ConfigError("rate must be in (0, 1]")
        impl = self._compressor()
        force = list(dict.fromkeys(["\n", ".", "?", "!", *keep]))[:_MAX_FORCE]
        out = []
        for text in texts:
            if not text.strip():
                out.append(Compressed(text, 0, 0))
                continue
            kwargs: dict[str, Any] = {"rate": r, "force_tokens": force, "force_reserve_digit": self.force_digits}
            if target_tokens is not None:
                kwargs["target_token"] = target_tokens
            try:
                res = impl.compress_prompt_llmlingua2([text], **kwargs)
            except Exception as exc:
                raise CompressionError(f"LLMLingua-2 failed: {exc}") from exc
            comp = str(res["compressed_prompt"])
            out.append(Compressed(comp, count_tokens(text), count_tokens(comp)))
        return out
