"""Vector quantization in qdrant-edge (the real engine): int8 and binary copies are built and searched
first, rescoring restores exact cosines and the neighbours, and ``vector_bytes`` reads the sizes from
the segment files."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from memsvc.exceptions import ConfigError
from memsvc.stores import VECTOR_STORES, Scope, VectorPoint
from memsvc.stores.base import quantized_vector_bytes
from memsvc.stores.qdrant_edge import QdrantEdgeVectorStore

DIM = 384
SCOPE = Scope("t", "u")


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors (as sentence embeddings are) and queries that are noisy copies of them."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, DIM))
    x = centers[rng.integers(0, 20, n)] + 0.6 * rng.normal(size=(n, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:40] + 0.02 * rng.normal(size=(40, DIM))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x.astype(np.float32), q.astype(np.float32)


def _store(path: Path, x: np.ndarray, **kw: object) -> QdrantEdgeVectorStore:
    s = QdrantEdgeVectorStore(path, dim=DIM, hnsw_threshold=100, **kw)  # type: ignore[arg-type]
    s.upsert([VectorPoint(id=str(uuid.UUID(int=i + 1)), vector=v, tenant=SCOPE.tenant, user=SCOPE.user,
                          level="turn", start=0.0, end=0.0) for i, v in enumerate(x)])
    return s


@pytest.mark.parametrize(("quantization", "ratio"), [("int8", 3.9), ("binary", 32.0)])
def test_quantized_copies_are_built_and_measured(tmp_path: Path, quantization: str, ratio: float) -> None:
    x, q = _data()
    s = _store(tmp_path, x, quantization=quantization)
    try:
        assert s.unindexed() == 0  # optimized: the quantized copy exists
        sizes = s.vector_bytes()
        assert sizes["points"] == sizes["quantized_points"] == len(x)
        assert sizes["float32_bytes"] == len(x) * DIM * 4
        assert sizes["quantized_bytes"] == len(x) * quantized_vector_bytes(quantization, DIM)
        assert sizes["ratio"] >= ratio
        exact = x @ q.T
        for rescore in (True, False):
            s.rescore = rescore
            got = s.search(SCOPE, q, 10)
            top1 = [int(uuid.UUID(r[0][0]).int) - 1 for r in got]
            cos = [r[0][1] for r in got]
            if rescore:  # exact cosines of the returned points, and the true nearest first
                assert top1 == list(range(40))
                np.testing.assert_allclose(cos, exact[range(40), range(40)], atol=1e-4)
            else:  # the quantized scores themselves
                assert not np.allclose(cos, exact[range(40), range(40)], atol=1e-4)
    finally:
        s.close()


def test_unquantized_store_reports_float_vectors_only(tmp_path: Path) -> None:
    x, _ = _data(50)
    s = _store(tmp_path, x)
    try:
        assert s.vector_bytes() == {"points": 50, "float32_bytes": 50 * DIM * 4}
    finally:
        s.close()


def test_bad_quantization_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        VECTOR_STORES.create("qdrant-edge", dim=DIM, path=str(tmp_path / "a"), quantization="int4")
    with pytest.raises(ConfigError):
        VECTOR_STORES.create("qdrant-edge", dim=DIM, path=str(tmp_path / "b"), quantization="int8", oversampling=0.5)
    assert quantized_vector_bytes("int8", 100) == 116 and quantized_vector_bytes("binary", 130) == 32
