"""The VectorStore conformance suite: one abstract class every backend's test class subclasses.

    VectorStoreSuite            every backend: writes, deletes, search, filters, isolation, bad input
    └── PersistentVectorStoreSuite   on-disk backends: reopening keeps the points and checks the dim

A backend's tests only say how to build an empty store (``make_store``); the semantics checked here
are those of the reference ``InMemoryVectorStore`` (``memsvc.stores.memory.matches``).
"""

from __future__ import annotations

import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsvc.exceptions import EmbeddingError, IndexMismatchError, StoreError
from memsvc.stores import Scope, VectorFilter, VectorPoint, VectorStore

DIM = 8
A = Scope("tenant-a", "alice")


def unit(*coords: float) -> np.ndarray:
    """A DIM-sized vector with the given leading coordinates (not normalised)."""
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(coords)] = coords
    return v


def angled(degrees: float) -> np.ndarray:
    """Unit vector at ``degrees`` from e0 in the (e0, e1) plane: cosine to e0 is cos(degrees)."""
    r = math.radians(degrees)
    return unit(math.cos(r), math.sin(r))


def pt(
    vector: np.ndarray | None = None,
    scope: Scope = A,
    *,
    pid: str | None = None,
    level: str = "turn",
    start: float = 0.0,
    end: float = 1.0,
    session: str | None = None,
    stream: str | None = None,
    extra: dict[str, Any] | None = None,
) -> VectorPoint:
    return VectorPoint(
        id=str(uuid.uuid4()) if pid is None else pid,
        vector=unit(1.0) if vector is None else vector,
        tenant=scope.tenant,
        user=scope.user,
        level=level,
        start=start,
        end=end,
        session=session,
        stream=stream,
        extra=extra or {},
    )


def hits(
    store: VectorStore, scope: Scope, query: np.ndarray, k: int = 100, flt: VectorFilter | None = None
) -> list[str]:
    """Ids returned for one query, best first."""
    (row,) = store.search(scope, query[None, :], k, flt)
    return [pid for pid, _ in row]


class VectorStoreSuite(ABC):
    """Behaviour every ``VectorStore`` must have. Subclass it and implement ``make_store``."""

    many_points: ClassVar[int] = 2_100
    """Enough points to need several pages when a backend scrolls its ids."""

    @abstractmethod
    def make_store(self, path: Path, dim: int) -> VectorStore:
        """A new, empty store of size ``dim`` (``path``: a folder the store may use)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[VectorStore]:
        s = self.make_store(tmp_path / "vectors", DIM)
        yield s
        s.close()

    # -- shape of the API ------------------------------------------------------------------------
    def test_satisfies_protocol(self, store: VectorStore) -> None:
        assert isinstance(store, VectorStore)
        assert store.dim == DIM

    def test_empty_store(self, store: VectorStore) -> None:
        assert store.count() == 0
        assert store.count(A) == 0
        assert store.ids() == set()
        assert store.search(A, unit(1.0)[None, :], 5) == [[]]
        assert store.fetch([str(uuid.uuid4())]) == {}
        store.delete([str(uuid.uuid4())])
        store.delete_scope(A)
        store.flush()

    # -- writes ----------------------------------------------------------------------------------
    def test_upsert_then_read_back(self, store: VectorStore) -> None:
        pts = [pt(angled(d)) for d in (0, 30, 60)]
        store.upsert(pts)
        assert store.count() == 3
        assert store.count(A) == 3
        assert store.ids() == {p.id for p in pts}
        assert store.ids(A) == {p.id for p in pts}

    def test_upsert_empty_batch_is_a_no_op(self, store: VectorStore) -> None:
        store.upsert([])
        assert store.count() == 0

    def test_upsert_replaces_by_id(self, store: VectorStore) -> None:
        pid = str(uuid.uuid4())
        store.upsert([pt(unit(1.0), pid=pid, level="turn", session="s1")])
        store.upsert([pt(unit(0.0, 1.0), pid=pid, level="episode", session="s2")])
        assert store.count() == 1
        np.testing.assert_allclose(store.fetch([pid])[pid], unit(0.0, 1.0), atol=1e-6)
        assert hits(store, A, unit(1.0), flt=VectorFilter(levels=("turn",))) == []
        assert hits(store, A, unit(1.0), flt=VectorFilter(session="s1")) == []
        assert hits(store, A, unit(1.0), flt=VectorFilter(levels=("episode",), session="s2")) == [pid]

    def test_upsert_can_move_a_point_to_another_scope(self, store: VectorStore) -> None:
        other = Scope("tenant-a", "bob")
        pid = str(uuid.uuid4())
        store.upsert([pt(pid=pid)])
        store.upsert([pt(pid=pid, scope=other)])
        assert store.ids(A) == set()
        assert store.ids(other) == {pid}
        assert hits(store, A, unit(1.0)) == []

    def test_extra_payload_is_accepted(self, store: VectorStore) -> None:
        p = pt(extra={"kind": "frame", "embedder": "minilm@1"})
        store.upsert([p])
        assert hits(store, A, unit(1.0)) == [p.id]

    def test_ids_come_back_in_canonical_uuid_form(self, store: VectorStore) -> None:
        raw = uuid.uuid4()
        store.upsert([pt(pid=str(raw).upper())])
        assert store.ids() == {str(raw)}
        assert hits(store, A, unit(1.0)) == [str(raw)]
        assert list(store.fetch([str(raw).upper()])) == [str(raw)]

    def test_many_points_scroll_past_one_page(self, store: VectorStore) -> None:
        rng = np.random.default_rng(7)
        pts = [pt(rng.normal(size=DIM).astype(np.float32)) for _ in range(self.many_points)]
        store.upsert(pts)
        assert store.ids(A) == {p.id for p in pts}
        assert store.count(A) == self.many_points

    # -- deletes ---------------------------------------------------------------------------------
    def test_delete_by_id(self, store: VectorStore) -> None:
        pts = [pt() for _ in range(3)]
        store.upsert(pts)
        store.delete([pts[0].id, str(uuid.uuid4())])  # an unknown id is ignored
        assert store.ids() == {pts[1].id, pts[2].id}
        store.delete([])
        assert store.count() == 2
        assert hits(store, A, unit(1.0)) and pts[0].id not in hits(store, A, unit(1.0))

    def test_delete_scope_removes_only_that_tenant_and_user(self, store: VectorStore) -> None:
        same_user_other_tenant = Scope("tenant-b", A.user)
        other_user_same_tenant = Scope(A.tenant, "bob")
        mine = [pt() for _ in range(3)]
        kept = [pt(scope=same_user_other_tenant), pt(scope=other_user_same_tenant)]
        store.upsert(mine + kept)
        store.delete_scope(A)
        assert store.count(A) == 0
        assert store.ids() == {p.id for p in kept}
        assert store.count(same_user_other_tenant) == 1
        assert store.count(other_user_same_tenant) == 1

    # -- search ----------------------------------------------------------------------------------
    def test_search_orders_by_cosine_and_honours_k(self, store: VectorStore) -> None:
        pts = {d: pt(angled(d)) for d in (50, 0, 75, 20)}
        store.upsert(list(pts.values()))
        (row,) = store.search(A, unit(1.0)[None, :], 3)
        assert [pid for pid, _ in row] == [pts[0].id, pts[20].id, pts[50].id]
        for (_, score), d in zip(row, (0, 20, 50), strict=True):
            assert score == pytest.approx(math.cos(math.radians(d)), abs=1e-4)
        assert len(hits(store, A, unit(1.0), k=100)) == 4
        assert store.search(A, unit(1.0)[None, :], 0) == [[]]

    def test_search_is_cosine_whatever_the_norms(self, store: VectorStore) -> None:
        near, far = pt(angled(10) * 100.0), pt(angled(80) * 0.01)
        store.upsert([near, far])
        (row,) = store.search(A, unit(0.001)[None, :], 2)
        assert [pid for pid, _ in row] == [near.id, far.id]
        assert row[0][1] == pytest.approx(math.cos(math.radians(10)), abs=1e-4)

    def test_search_batch_of_queries(self, store: VectorStore) -> None:
        x, y = pt(unit(1.0)), pt(unit(0.0, 1.0))
        store.upsert([x, y])
        rows = store.search(A, np.stack([unit(1.0), unit(0.0, 1.0), unit(0.0, 0.0, 1.0)]), 1)
        assert [[pid for pid, _ in r] for r in rows[:2]] == [[x.id], [y.id]]
        assert len(rows) == 3 and len(rows[2]) == 1

    def test_fetch_returns_normalised_stored_vectors(self, store: VectorStore) -> None:
        p = pt(unit(3.0, 4.0))
        store.upsert([p])
        got = store.fetch([p.id, str(uuid.uuid4())])
        assert list(got) == [p.id]
        assert got[p.id].dtype == np.float32
        np.testing.assert_allclose(got[p.id], unit(0.6, 0.8), atol=1e-6)
        assert store.fetch([]) == {}

    def test_score_is_the_cosine_of_listed_points_of_the_scope(self, store: VectorStore) -> None:
        near, far, other = pt(angled(10)), pt(angled(80), level="episode"), pt(angled(0), Scope("tenant-a", "bob"))
        unlisted = pt(angled(0))
        store.upsert([near, far, other, unlisted])
        got = store.score(A, unit(2.0), [near.id, far.id, other.id, str(uuid.uuid4())])
        assert set(got) == {near.id, far.id}  # bob's point and the unknown id are left out
        assert got[near.id] == pytest.approx(math.cos(math.radians(10)), abs=1e-4)
        assert got[far.id] == pytest.approx(math.cos(math.radians(80)), abs=1e-4)
        assert store.score(A, unit(1.0), []) == {}
        # the same cosine that search reports
        (row,) = store.search(A, unit(1.0)[None, :], 10)
        assert dict(row)[near.id] == pytest.approx(got[near.id], abs=1e-5)
        with pytest.raises(EmbeddingError):
            store.score(A, np.ones(DIM + 1, dtype=np.float32), [near.id])

    # -- filters ---------------------------------------------------------------------------------
    def test_filter_levels(self, store: VectorStore) -> None:
        t, e, s = pt(level="turn"), pt(level="episode"), pt(level="summary")
        store.upsert([t, e, s])
        assert set(hits(store, A, unit(1.0), flt=VectorFilter(levels=("episode",)))) == {e.id}
        assert set(hits(store, A, unit(1.0), flt=VectorFilter(levels=("turn", "summary")))) == {t.id, s.id}
        assert hits(store, A, unit(1.0), flt=VectorFilter(levels=())) == []
        assert len(hits(store, A, unit(1.0), flt=VectorFilter())) == 3

    def test_filter_session_and_stream(self, store: VectorStore) -> None:
        s1, s2, cam, none = pt(session="s1"), pt(session="s2"), pt(stream="cam1"), pt()
        store.upsert([s1, s2, cam, none])
        assert hits(store, A, unit(1.0), flt=VectorFilter(session="s1")) == [s1.id]
        assert hits(store, A, unit(1.0), flt=VectorFilter(stream="cam1")) == [cam.id]
        assert hits(store, A, unit(1.0), flt=VectorFilter(stream="cam2")) == []
        assert hits(store, A, unit(1.0), flt=VectorFilter(session="s1", stream="cam1")) == []

    @pytest.mark.parametrize(
        ("time_from", "time_to", "expected"),
        [
            (None, None, True),
            (20.0, None, True),  # touching the end counts as overlap
            (20.5, None, False),
            (None, 10.0, True),  # touching the start counts as overlap
            (None, 9.5, False),
            (12.0, 15.0, True),  # inside
            (0.0, 100.0, True),  # around
            (0.0, 5.0, False),
            (25.0, 30.0, False),
        ],
    )
    def test_filter_time_overlap(
        self, store: VectorStore, time_from: float | None, time_to: float | None, expected: bool
    ) -> None:
        p = pt(start=10.0, end=20.0)
        store.upsert([p])
        got = hits(store, A, unit(1.0), flt=VectorFilter(time_from=time_from, time_to=time_to))
        assert got == ([p.id] if expected else [])

    def test_filters_combine_with_and(self, store: VectorStore) -> None:
        want = pt(level="episode", session="s1", start=100.0, end=200.0)
        decoys = [
            pt(level="turn", session="s1", start=100.0, end=200.0),
            pt(level="episode", session="s2", start=100.0, end=200.0),
            pt(level="episode", session="s1", start=0.0, end=50.0),
        ]
        store.upsert([want, *decoys])
        flt = VectorFilter(levels=("episode",), session="s1", time_from=150.0, time_to=160.0)
        assert hits(store, A, unit(1.0), flt=flt) == [want.id]

    def test_filters_never_widen_the_scope(self, store: VectorStore) -> None:
        theirs = pt(scope=Scope("tenant-b", "alice"), level="episode", session="s1")
        store.upsert([theirs])
        assert hits(store, A, unit(1.0), flt=VectorFilter(levels=("episode",), session="s1")) == []

    # -- isolation -------------------------------------------------------------------------------
    def test_tenant_and_user_isolation(self, store: VectorStore) -> None:
        scopes = [A, Scope("tenant-a", "bob"), Scope("tenant-b", "alice"), Scope("tenant-b", "bob")]
        owned = {s: [pt(angled(10 * i), scope=s) for i in range(3)] for s in scopes}
        store.upsert([p for ps in owned.values() for p in ps])
        for s in scopes:
            want = {p.id for p in owned[s]}
            assert set(hits(store, s, unit(1.0))) == want
            assert store.ids(s) == want
            assert store.count(s) == 3
        assert store.count() == 12
        assert hits(store, Scope("tenant-c", "alice"), unit(1.0)) == []

    def test_similar_names_do_not_match(self, store: VectorStore) -> None:
        store.upsert(
            [
                pt(scope=Scope("Tenant-A", "alice")),
                pt(scope=Scope("tenant-a", "alice ")),
                pt(scope=Scope("tenant", "a-alice")),
            ]
        )
        assert hits(store, A, unit(1.0)) == []
        assert store.count(A) == 0

    # One store serves every example (each uses a fresh namespace), and the method is inherited by each
    # backend's class: both are intended, so those two health checks are silenced.
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
    )
    @given(
        owners=st.lists(
            st.tuples(st.sampled_from(["t", "T", "t2", "é"]), st.sampled_from(["u", "U", "u2", "ü"])),
            min_size=1,
            max_size=12,
        ),
        seed=st.integers(0, 2**32 - 1),
    )
    def test_isolation_property(self, store: VectorStore, owners: list[tuple[str, str]], seed: int) -> None:
        ns = uuid.uuid4().hex[:8]
        rng = np.random.default_rng(seed)
        pts = [pt(rng.normal(size=DIM).astype(np.float32), scope=Scope(f"{ns}{t}", u)) for t, u in owners]
        store.upsert(pts)
        query = rng.normal(size=DIM).astype(np.float32)
        for t, u in set(owners) | {("t", "u"), ("t2", "U")}:
            scope = Scope(f"{ns}{t}", u)
            want = {p.id for p in pts if (p.tenant, p.user) == (scope.tenant, scope.user)}
            assert set(hits(store, scope, query, k=len(pts) + 1)) == want
            assert store.ids(scope) == want
            assert store.count(scope) == len(want)

    # -- bad input -------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        "bad",
        [np.ones(DIM - 1), np.ones(DIM + 1), unit(float("nan")), unit(1.0, float("inf")), np.array([])],
        ids=["short", "long", "nan", "inf", "empty"],
    )
    def test_bad_vectors_raise_and_store_nothing(self, store: VectorStore, bad: np.ndarray) -> None:
        with pytest.raises(EmbeddingError):
            store.upsert([pt(), pt(bad)])
        assert store.count() == 0
        store.upsert([pt()])
        with pytest.raises(EmbeddingError):
            store.search(A, bad[None, :] if bad.size else np.ones((1, DIM + 2)), 5)

    @pytest.mark.parametrize("bad_id", ["not-a-uuid", "", "42", "123e4567-e89b-12d3-a456-42661417400"])
    def test_non_uuid_ids_raise_store_error(self, store: VectorStore, bad_id: str) -> None:
        with pytest.raises(StoreError):
            store.upsert([pt(), pt(pid=bad_id)])
        assert store.count() == 0
        with pytest.raises(StoreError):
            store.delete([bad_id])
        with pytest.raises(StoreError):
            store.fetch([bad_id])


class PersistentVectorStoreSuite(VectorStoreSuite):
    """Extra behaviour of a store that lives on disk under ``path``."""

    def test_reopen_keeps_points(self, tmp_path: Path) -> None:
        path = tmp_path / "persist"
        s = self.make_store(path, DIM)
        keep, gone = pt(angled(0), session="s1"), pt(angled(40))
        s.upsert([keep, gone, pt(scope=Scope("tenant-b", "bob"))])
        s.delete([gone.id])
        s.flush()
        s.close()
        s = self.make_store(path, DIM)
        try:
            assert s.count() == 2
            assert hits(s, A, unit(1.0), flt=VectorFilter(session="s1")) == [keep.id]
            np.testing.assert_allclose(s.fetch([keep.id])[keep.id], angled(0), atol=1e-6)
            s.upsert([pt()])
            assert s.count(A) == 2
        finally:
            s.close()

    @pytest.mark.parametrize("with_points", [True, False], ids=["filled", "empty"])
    def test_reopen_with_another_dim_raises(self, tmp_path: Path, with_points: bool) -> None:
        path = tmp_path / "persist"
        s = self.make_store(path, DIM)
        if with_points:
            s.upsert([pt()])
        s.flush()
        s.close()
        with pytest.raises(IndexMismatchError):
            self.make_store(path, DIM * 2)
        s = self.make_store(path, DIM)  # the failed open left the index usable
        try:
            assert s.count() == (1 if with_points else 0)
        finally:
            s.close()
