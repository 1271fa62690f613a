"""The LexicalIndex conformance suite: every backend's test class subclasses ``LexicalIndexSuite``.

A backend's tests only say how to build an empty index (``make_index``); scores must equal those of
the reference ``InMemoryLexicalIndex`` (same term weights, IDF over the searching scope and level).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsvc.stores import InMemoryLexicalIndex, LexicalDoc, LexicalIndex, Scope, VectorFilter

A = Scope("tenant-a", "alice")
B = Scope("tenant-a", "bob")
OTHER_TENANT = Scope("tenant-b", "alice")

WORDS = ["adoption", "agency", "pottery", "class", "sunrise", "lake", "painting", "support", "group",
         "camping", "mountains", "violin", "guitar", "concert", "museum", "dinosaur", "bowl", "kids"]


def doc(text: str, scope: Scope = A, *, level: str = "turn", start: float = 0.0, session: str | None = None,
        did: str | None = None, context: str | None = None) -> LexicalDoc:
    return LexicalDoc(id=did or str(uuid.uuid4()), text=text, tenant=scope.tenant, user=scope.user, level=level,
                      start=start, end=start, session=session, context=context)


class LexicalIndexSuite(ABC):
    @abstractmethod
    def make_index(self, path: Path) -> LexicalIndex: ...

    @pytest.fixture
    def index(self, tmp_path: Path) -> LexicalIndex:
        ix = self.make_index(tmp_path / "lexical")
        yield ix
        ix.close()

    def test_finds_by_keyword_best_first(self, index: LexicalIndex) -> None:
        a = doc("Caroline: researching adoption agencies for my family")
        b = doc("Melanie: the kids loved the pottery class")
        c = doc("Caroline: pottery is relaxing, and adoption is a dream")
        index.upsert([a, b, c])
        got = index.search(A, ["adoption agencies"], 10)[0]
        assert [i for i, _ in got] == [a.id, c.id]
        assert got[0][1] > got[1][1] > 0
        assert isinstance(index, LexicalIndex)

    def test_stemming_and_stop_words(self, index: LexicalIndex) -> None:
        a = doc("I painted the sunrises")
        index.upsert([a, doc("nothing relevant")])
        assert [i for i, _ in index.search(A, ["painting a sunrise"], 5)[0]] == [a.id]
        assert index.search(A, ["the a of and"], 5) == [[]]

    def test_scopes_are_isolated_and_do_not_share_statistics(self, index: LexicalIndex) -> None:
        mine = [doc("adoption agencies"), doc("pottery class"), doc("lake sunrise")]
        index.upsert(mine)
        before = index.search(A, ["adoption pottery"], 10)[0]
        theirs = [doc("adoption adoption secret", B), doc("adoption again", OTHER_TENANT),
                  doc("pottery pottery", B)]
        index.upsert(theirs)
        after = index.search(A, ["adoption pottery"], 10)[0]
        assert after == before
        assert {i for i, _ in index.search(B, ["adoption"], 10)[0]} == {theirs[0].id}
        assert {i for i, _ in index.search(OTHER_TENANT, ["adoption"], 10)[0]} == {theirs[1].id}

    def test_filters(self, index: LexicalIndex) -> None:
        t = doc("violin concert", start=100.0, session="s1")
        e = doc("violin concert with friends and a guitar", level="episode", start=100.0, session="s1")
        late = doc("violin lesson", start=500.0, session="s2")
        index.upsert([t, e, late])
        ids = lambda f: {i for i, _ in index.search(A, ["violin"], 10, f)[0]}  # noqa: E731
        assert ids(VectorFilter(levels=("turn",))) == {t.id, late.id}
        assert ids(VectorFilter(levels=("episode",))) == {e.id}
        assert ids(VectorFilter(session="s2")) == {late.id}
        assert ids(VectorFilter(time_from=200.0)) == {late.id}
        assert ids(VectorFilter(time_to=200.0)) == {t.id, e.id}

    def test_upsert_replaces_delete_and_counts(self, index: LexicalIndex) -> None:
        a = doc("guitar")
        b = doc("museum", B)
        index.upsert([a, b])
        assert index.count() == 2 and index.count(A) == 1 and index.ids(B) == {b.id}
        index.upsert([doc("dinosaur bowl", did=a.id)])
        assert index.search(A, ["guitar"], 5) == [[]]
        assert [i for i, _ in index.search(A, ["dinosaur"], 5)[0]] == [a.id]
        index.delete([a.id, str(uuid.uuid4())])
        assert index.count(A) == 0 and index.count() == 1
        index.delete_scope(B)
        assert index.count() == 0 and index.ids() == set()

    def test_context_field(self, index: LexicalIndex) -> None:
        a = doc("yes, it was amazing!", context="did you go to the dinosaur museum?\nyes, it was amazing!")
        b = doc("the museum was closed", context="the museum was closed")
        c = doc("dinosaur bowl")  # no context
        index.upsert([a, b, c])
        assert {i for i, _ in index.search(A, ["dinosaur museum"], 5)[0]} == {b.id, c.id}
        got = index.search(A, ["dinosaur museum"], 5, field="context")[0]
        assert [i for i, _ in got] == [a.id, b.id]

    def test_k_and_batch_and_ties(self, index: LexicalIndex) -> None:
        docs = [doc("camping trip") for _ in range(6)]
        index.upsert(docs)
        got = index.search(A, ["camping", "mountains"], 4)
        assert len(got) == 2 and got[1] == []
        assert [i for i, _ in got[0]] == sorted(d.id for d in docs)[:4]  # equal scores: by id
        assert index.search(A, ["camping"], 0) == [[]]

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors])
    @given(
        texts=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join), min_size=1, max_size=20),
        owners=st.lists(st.sampled_from([A, B]), min_size=20, max_size=20),
        query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
    )
    def test_agrees_with_the_reference(self, tmp_path_factory: pytest.TempPathFactory, texts: list[str],
                                       owners: list[Scope], query: str) -> None:
        ix = self.make_index(tmp_path_factory.mktemp("lex") / "ix")
        ref = InMemoryLexicalIndex()
        try:
            docs = [doc(t, owners[i]) for i, t in enumerate(texts)]
            ix.upsert(docs)
            ref.upsert(docs)
            for scope in (A, B):
                got = ix.search(scope, [query], 50)[0]
                want = ref.search(scope, [query], 50)[0]
                assert [i for i, _ in got] == [i for i, _ in want]
                assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-4)
        finally:
            ix.close()


class PersistentLexicalIndexSuite(LexicalIndexSuite):
    def test_reopen_keeps_documents(self, tmp_path: Path) -> None:
        ix = self.make_index(tmp_path / "p")
        a = doc("museum dinosaur")
        ix.upsert([a])
        ix.flush()
        ix.close()
        ix = self.make_index(tmp_path / "p")
        try:
            assert [i for i, _ in ix.search(A, ["dinosaur"], 5)[0]] == [a.id]
        finally:
            ix.close()
