"""The ONNX Runtime path of the sentence-transformers embedder: same vectors as torch, exported once,
no torch import once cached, refusal of an export that does not reproduce the model."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memsvc.embedders import SentenceTransformerEmbedder, _onnx
from memsvc.exceptions import ConfigError, ModelError
from tests.model_fixtures import tiny_bert

TEXTS = [
    "hello",
    "Caroline: I went to a LGBTQ support group yesterday and it was so powerful.",
    "Melanie: I painted a sunrise over the lake.",
    "word " * 400,  # past max_seq_length: truncated the same way
    "数字 123, émigré — naïve café! 🙂",
    "   ",
]


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT with MiniLM's tokenizer, mean pooling, a dense layer: a sentence-transformers
    model that is not MiniLM (the export is generic)."""
    from sentence_transformers import SentenceTransformer, models

    base = tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
    word = models.Transformer(str(base), max_seq_length=64)
    st = SentenceTransformer(modules=[word, models.Pooling(32, "mean"), models.Dense(32, 16)], device="cpu")
    out = tmp_path_factory.mktemp("tiny-st")
    st.save(str(out))
    return out


def test_minilm_onnx_matches_torch(minilm: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    onnx = SentenceTransformerEmbedder(runtime="onnx", cache_dir=str(tmp_path))
    torch_ = SentenceTransformerEmbedder(runtime="torch")
    a, b = onnx.embed(TEXTS), torch_.embed(TEXTS)
    assert onnx.runtime_used == "onnx" and torch_.runtime_used == "torch"
    assert a.shape == b.shape == (len(TEXTS), 384) and a.dtype == np.float32
    assert float(np.abs(a - b).max()) < 1e-4
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # one text alone (no padding) equals the same text inside a padded batch
    assert float(np.abs(onnx.embed([TEXTS[1]])[0] - a[1]).max()) < 1e-5
    # same name and version: stores made with either runtime are interchangeable
    assert (onnx.name, onnx.version, onnx.dim) == (torch_.name, torch_.version, torch_.dim)
    (export,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    meta = json.loads((export / "meta.json").read_text())
    assert meta["max_seq_length"] == 256 and meta["dim"] == 384


def test_cached_export_embeds_without_importing_torch(minilm: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    SentenceTransformerEmbedder(runtime="onnx", cache_dir=str(tmp_path)).embed(["warm the cache"])
    code = (
        "import sys; from memsvc.embedders import SentenceTransformerEmbedder as E; "
        f"e = E(runtime='onnx', cache_dir={str(tmp_path)!r}); v = e.embed(['hi there']); "
        "print(v.shape, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "(1, 384) False False"


def test_any_sentence_transformers_model_exports(tiny_st: Path, tmp_path: Path) -> None:
    onnx = SentenceTransformerEmbedder(model=str(tiny_st), runtime="onnx", cache_dir=str(tmp_path))
    torch_ = SentenceTransformerEmbedder(model=str(tiny_st), runtime="torch")
    assert onnx.dim == torch_.dim == 16
    a, b = onnx.embed(TEXTS), torch_.embed(TEXTS)
    assert float(np.abs(a - b).max()) < 1e-4


def test_an_export_that_differs_is_refused(tiny_st: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(_onnx, "_TOLERANCE", -1.0)  # no export can pass: the check must refuse it
    with pytest.raises(ModelError, match="differs from the torch model"):
        SentenceTransformerEmbedder(model=str(tiny_st), runtime="onnx", cache_dir=str(tmp_path / "a")).embed(["x"])
    assert not [p for p in (tmp_path / "a").iterdir() if not p.name.startswith(".")]  # nothing published
    with caplog.at_level(logging.WARNING):
        auto = SentenceTransformerEmbedder(model=str(tiny_st), cache_dir=str(tmp_path / "b"))
        v = auto.embed(["x"])
    assert auto.runtime_used == "torch" and v.shape == (1, 16)
    assert any("with torch" in r.message for r in caplog.records)


def test_runtime_options_are_checked() -> None:
    with pytest.raises(ConfigError):
        SentenceTransformerEmbedder(runtime="tensorrt")
    with pytest.raises(ConfigError):
        SentenceTransformerEmbedder(runtime="onnx", device="cuda")
