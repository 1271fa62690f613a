from __future__ import annotations

from pathlib import Path

import pytest

from memsvc import Settings
from memsvc.embedders import EMBEDDERS, HashingEmbedder
from memsvc.exceptions import ConfigError
from memsvc.registry import Registry
from memsvc.segmenters import SEGMENTERS


def test_env_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMSVC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEMSVC_EMBEDDER__BACKEND", "hashing")
    monkeypatch.setenv("MEMSVC_VECTOR__QUANTIZATION", "int8")
    s = Settings()
    assert s.data_dir == tmp_path
    assert s.embedder.backend == "hashing"
    assert s.vector.quantization == "int8"
    assert s.sql_url == f"sqlite:///{tmp_path / 'memsvc.db'}"
    # explicit arguments win over the environment
    assert Settings(data_dir=tmp_path / "x").data_dir == tmp_path / "x"


def test_bad_settings_are_rejected() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(vector={"quantization": "int3"})
    with pytest.raises(ValidationError):
        Settings(no_such_field=1)


def test_registry_by_name_dotted_path_and_errors() -> None:
    assert isinstance(EMBEDDERS.create("hashing", dim=16), HashingEmbedder)
    emb = EMBEDDERS.create("memsvc.embedders.fake.HashingEmbedder", dim=32)
    assert emb.dim == 32
    with pytest.raises(ConfigError, match="known: hashing, sentence-transformers"):
        EMBEDDERS.create("nope")
    with pytest.raises(ConfigError, match="cannot import"):
        EMBEDDERS.create("memsvc.embedders.fake.Missing")
    with pytest.raises(ConfigError, match="bad options"):
        SEGMENTERS.create("similarity", no_such_option=1)
    with pytest.raises(ConfigError):
        SEGMENTERS.create("similarity", min_size=5, max_size=2)
    r: Registry[object] = Registry("thing")
    r.register("a")(object)
    with pytest.raises(ConfigError, match="registered twice"):
        r.register("a")(dict)


def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    import numpy as np

    e = HashingEmbedder(dim=64)
    a, b = e.embed(["the cat sat", "the cat sat"]), e.embed(["a dog barked"])
    assert np.allclose(a[0], a[1]) and a.shape == (2, 64)
    assert np.isclose(np.linalg.norm(a[0]), 1.0)
    assert float(a[0] @ b[0]) < 0.9
