"""Every registered VectorStore backend runs the conformance suite; the registry rejects bad names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memsvc.exceptions import ConfigError
from memsvc.stores import VECTOR_STORES, InMemoryVectorStore, Scope, VectorPoint, VectorStore
from tests.conformance.vector_store import DIM, PersistentVectorStoreSuite, VectorStoreSuite, hits, pt, unit

# How to build each registered backend for tests, by registry name (a new backend must add itself).
BACKEND_OPTIONS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "memory": lambda path: {},
    "qdrant-edge": lambda path: {"path": str(path)},
    "qdrant": lambda path: {"location": ":memory:"},
}


class TestInMemoryVectorStore(VectorStoreSuite):
    def make_store(self, path: Path, dim: int) -> VectorStore:
        return VECTOR_STORES.create("memory", dim=dim)


class TestQdrantEdgeVectorStore(PersistentVectorStoreSuite):
    def make_store(self, path: Path, dim: int) -> VectorStore:
        return VECTOR_STORES.create("qdrant-edge", dim=dim, path=str(path))


class TestQdrantLocalMemoryVectorStore(VectorStoreSuite):
    def make_store(self, path: Path, dim: int) -> VectorStore:
        return VECTOR_STORES.create("qdrant", dim=dim, location=":memory:")


class TestQdrantLocalPathVectorStore(PersistentVectorStoreSuite):
    # Local mode on disk commits each point on its own (~15 ms): small pages keep the paging test quick.
    many_points = 230

    def make_store(self, path: Path, dim: int) -> VectorStore:
        return VECTOR_STORES.create("qdrant", dim=dim, path=str(path), quantization="binary", scroll_page=50)


def _indexed_shard(
    tmp_path: Path, quantization: str, dim: int, rng: np.random.Generator
) -> tuple[list[Scope], list[VectorPoint], VectorStore, Any]:
    """600 random points over two tenants, in the reference store and in a qdrant-edge shard that has
    built its HNSW index (``hnsw_threshold`` 200, written in three batches)."""
    scopes = [Scope("tenant-a", "alice"), Scope("tenant-b", "alice")]
    pts = [pt(rng.normal(size=dim).astype(np.float32), scope=scopes[i % 2]) for i in range(600)]
    ref = VECTOR_STORES.create("memory", dim=dim)
    store = VECTOR_STORES.create(
        "qdrant-edge", dim=dim, path=str(tmp_path / "v"), quantization=quantization, hnsw_threshold=200
    )
    for i in range(0, 600, 200):
        ref.upsert(pts[i : i + 200])
        store.upsert(pts[i : i + 200])
    assert store.unindexed() == 0
    return scopes, pts, ref, store


@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_qdrant_edge_hnsw_search_agrees_with_the_reference(quantization: str, tmp_path: Path) -> None:
    """Past ``hnsw_threshold`` the shard builds its HNSW index (quantized or not); filtered ANN search
    must still isolate scopes and, after rescoring, give the reference's neighbours and cosines."""
    dim, rng = 64, np.random.default_rng(3)
    scopes, pts, ref, store = _indexed_shard(tmp_path, quantization, dim, rng)
    try:
        queries = rng.normal(size=(20, dim)).astype(np.float32)
        for scope in scopes:
            mine = {p.id for p in pts if p.tenant == scope.tenant}
            got, want = store.search(scope, queries, 10), ref.search(scope, queries, 10)
            overlap = 0
            for g, w in zip(got, want, strict=True):
                assert {pid for pid, _ in g} <= mine
                exact = dict(w)
                overlap += sum(pid in exact for pid, _ in g)
                for pid, score in g:
                    if pid in exact:
                        assert score == pytest.approx(exact[pid], abs=1e-4)
            assert overlap / (10 * len(queries)) >= 0.95
    finally:
        store.close()


@pytest.mark.parametrize("quantization", ["none", "int8", "binary"])
def test_qdrant_edge_scores_listed_ids_exactly_whatever_the_quantization(quantization: str, tmp_path: Path) -> None:
    """``score`` (the ranker's exact cosine of candidates from other lists) rescores with the full vectors
    in indexed, quantized segments too, and only inside the scope."""
    dim, rng = 64, np.random.default_rng(5)
    scopes, pts, ref, store = _indexed_shard(tmp_path, quantization, dim, rng)
    try:
        q = rng.normal(size=dim).astype(np.float32)
        for scope in scopes:
            mine = [p.id for p in pts if p.tenant == scope.tenant]
            other = [p.id for p in pts if p.tenant != scope.tenant]
            exact = dict(ref.search(scope, q[None, :], 1000)[0])
            scored = store.score(scope, q, mine[:150] + other[:5])
            assert set(scored) == set(mine[:150])
            for pid, score in scored.items():
                assert score == pytest.approx(exact[pid], abs=1e-4)
    finally:
        store.close()


@pytest.mark.parametrize("name", VECTOR_STORES.names())
def test_every_registered_backend_builds_and_isolates(name: str, tmp_path: Path) -> None:
    assert name in BACKEND_OPTIONS, f"registered backend {name!r} has no conformance test class"
    store = VECTOR_STORES.create(name, dim=DIM, **BACKEND_OPTIONS[name](tmp_path / "vectors"))
    try:
        assert isinstance(store, VectorStore)
        mine, theirs = pt(), pt(scope=Scope("tenant-a", "bob"))
        store.upsert([mine, theirs])
        assert hits(store, Scope("tenant-a", "alice"), unit(1.0)) == [mine.id]
    finally:
        store.close()


def test_registry_knows_the_documented_backends() -> None:
    assert set(VECTOR_STORES.names()) >= {"memory", "qdrant", "qdrant-edge"}


@pytest.mark.parametrize(
    "path", ["memsvc.stores.memory:InMemoryVectorStore", "memsvc.stores.memory.InMemoryVectorStore"]
)
def test_registry_accepts_a_dotted_class_path(path: str) -> None:
    store = VECTOR_STORES.create(path, dim=DIM)
    assert isinstance(store, InMemoryVectorStore)
    store.upsert([pt()])
    assert store.search(Scope("tenant-a", "alice"), np.ones((1, DIM)), 1)[0]


@pytest.mark.parametrize(
    "name",
    [
        "nope",
        "",
        "Memory",
        "memsvc.stores.nope:Store",
        "memsvc.stores.memory:NoSuchStore",
        "no_such_package.module.Class",
        "collections:OrderedDict",  # importable and callable with dim=..., but not a VectorStore
        "memsvc.stores.memory:matches",
    ],
)
def test_registry_rejects_bad_names_and_paths(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        VECTOR_STORES.create(name, dim=DIM)
    for known in ("memory", "qdrant", "qdrant-edge"):
        assert known in str(err.value)


def test_registry_rejects_bad_options() -> None:
    with pytest.raises(ConfigError):
        VECTOR_STORES.create("memory", dim=DIM, no_such_option=1)
    with pytest.raises(ConfigError):
        VECTOR_STORES.create("qdrant", dim=DIM, location=":memory:", quantization="int4")
