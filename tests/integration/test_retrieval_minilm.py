"""Retrieval end to end with real components: MiniLM, qdrant-edge (dense + BM25 shards), SQLite.

Budgets are never exceeded, ranking is deterministic, a user never sees another user's memory, time
expressions steer the ranking, and every hit explains its score.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsvc import Memory
from memsvc.config import Settings
from memsvc.retrieval.packing import format_context, order_key
from memsvc.tokens import count_tokens

T0 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)

SESSIONS = [
    (T0, [("Caroline", "I went to a LGBTQ support group yesterday and it was so powerful."),
          ("Melanie", "Wow, that's cool, Caroline! What happened that was so awesome?"),
          ("Caroline", "The transgender stories were so inspiring - I was so happy and thankful for all the support."),
          ("Melanie", "I'm glad. By the way, I took the kids to the museum last week, they loved the dinosaurs.")]),
    (T0 + timedelta(days=17), [
          ("Melanie", "I painted a sunrise over the lake, it reminds me of our camping trip."),
          ("Caroline", "Beautiful! I'm researching adoption agencies, it's been a dream to have a family."),
          ("Melanie", "That's great news. Which agency are you looking at?"),
          ("Caroline", "One that supports LGBTQ folks. The counselor said the process takes about a year.")]),
    (T0 + timedelta(days=45), [
          ("Melanie", "We signed up for a pottery class; I made a bowl with a dog face on it."),
          ("Caroline", "So fun! I started volunteering at the youth center on weekends."),
          ("Melanie", "How is the adoption going?"),
          ("Caroline", "Still waiting, but the home study went well last Friday.")]),
]


def ingest(m: Memory, user: str = "u1") -> list[str]:
    ids: list[str] = []
    for i, (ts, turns) in enumerate(SESSIONS):
        msgs = [{"role": "user", "content": text, "name": who} for who, text in turns]
        ids += m.add(messages=msgs, user_id=user, session_id=f"s{i}", timestamp=ts)
    return ids


@pytest.fixture(scope="module")
def store(minilm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Memory, list[str]]]:  # type: ignore[no-untyped-def]
    m = Memory(path=tmp_path_factory.mktemp("retrieval"), embedder=minilm)
    ids = ingest(m)
    yield m, ids
    m.close()


WORDS = ["adoption", "agency", "pottery", "bowl", "sunrise", "lake", "support group", "museum", "dinosaurs",
         "Caroline", "Melanie", "what", "when", "did", "last week", "in May 2023", "yesterday", "kids", "family",
         "volunteering", "the", "?", "home study", "camping", "x" * 40]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=8),
       budget=st.integers(min_value=1, max_value=400), limit=st.one_of(st.none(), st.integers(1, 6)))
def test_budget_is_never_exceeded(store: tuple[Memory, list[str]], words: list[str], budget: int,
                                  limit: int | None) -> None:
    m, _ = store
    q = " ".join(words)
    hits = m.search(q, user_id="u1", budget_tokens=budget, limit=limit, query_time=T0 + timedelta(days=60))
    ctx = m.context(q, user_id="u1", budget_tokens=budget, limit=limit, query_time=T0 + timedelta(days=60))
    assert count_tokens(ctx) <= budget
    assert ctx == format_context(hits)
    assert [order_key(h) for h in hits] == sorted(order_key(h) for h in hits)
    if limit is not None:
        assert len(hits) <= limit
    covered: list[str] = [s for h in hits for s in h.source_ids]
    assert len(covered) == len(set(covered))  # no turn packed twice


def test_big_budget_returns_everything_in_time_order(store: tuple[Memory, list[str]]) -> None:
    m, ids = store
    hits = m.search("adoption", user_id="u1", budget_tokens=5000)
    assert sorted(s for h in hits for s in h.source_ids) == sorted(ids)
    ctx = m.context("adoption", user_id="u1", budget_tokens=5000)
    assert ctx.startswith("[8 May 2023]\nCaroline: I went to a LGBTQ support group yesterday [2023-05-07]")
    headers = [line for line in ctx.split("\n") if re.fullmatch(r"\[\d{1,2} [A-Z][a-z]+ \d{4}\]", line)]
    assert headers == ["[8 May 2023]", "[25 May 2023]", "[22 June 2023]"]  # one header a session


def test_relevant_turn_first_with_explained_score(store: tuple[Memory, list[str]]) -> None:
    m, ids = store
    hits = m.search("Which adoption agency is Caroline researching?", user_id="u1", limit=3)
    assert hits[0].id == ids[5]
    top = hits[0]
    parts = {k: v for k, v in top.components.items() if not k.endswith("_raw")}
    assert {"dense", "lexical", "speaker"} <= set(parts)
    assert top.score == pytest.approx(sum(parts.values()), abs=1e-5)
    assert top.components["dense_raw"] > 0.3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_relative_dates_are_resolved_at_ingest(store: tuple[Memory, list[str]]) -> None:
    m, ids = store
    rec = m.get(ids[0], "u1")
    assert rec.text == "Caroline: I went to a LGBTQ support group yesterday [2023-05-07] and it was so powerful."
    assert rec.metadata["dates"][0][:2] == ["2023-05-07T00:00:00+00:00", "2023-05-08T00:00:00+00:00"]
    assert "last Friday [2023-06-16]" in m.get(ids[11], "u1").text


def test_time_in_the_query_steers_the_ranking(store: tuple[Memory, list[str]]) -> None:
    m, ids = store
    q = "What did Caroline say about adoption in June 2023?"
    hits = m.search(q, user_id="u1", limit=4, query_time=T0 + timedelta(days=60))
    assert hits[0].start_time.month == 6
    assert hits[0].components["temporal"] > 0
    # the same words anchored a month later prefer the later session
    q2 = "What did Caroline say about adoption last week?"
    hits2 = m.search(q2, user_id="u1", limit=4, query_time=T0 + timedelta(days=50))
    assert hits2[0].start_time == T0 + timedelta(days=45)


def test_ranking_is_deterministic(minilm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runs = []
    for name in ("a", "b"):
        m = Memory(path=tmp_path / name, embedder=minilm)
        ingest(m)
        got = []
        for q in ("adoption", "what did the kids love?", "pottery last month", "camping"):
            hits = m.search(q, user_id="u1", limit=12, query_time=T0 + timedelta(days=60))
            got.append([(h.text, h.score, tuple(sorted(h.components.items()))) for h in hits])
            again = m.search(q, user_id="u1", limit=12, query_time=T0 + timedelta(days=60))
            assert [(h.id, h.score) for h in again] == [(h.id, h.score) for h in hits]
        runs.append(got)
        m.close()
    assert runs[0] == runs[1]


_ISO = st.sampled_from(["t1", "t2", "t3"])
_USR = st.sampled_from(["ann", "bob", "cid", "Ann", "ann "])


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(owners=st.lists(st.tuples(_ISO, _USR), min_size=2, max_size=4, unique=True))
def test_a_user_never_sees_another_users_memory(minilm, tmp_path_factory: pytest.TempPathFactory,  # type: ignore[no-untyped-def]
                                                owners: list[tuple[str, str]]) -> None:
    base = tmp_path_factory.mktemp("iso")
    first = Memory(path=base, tenant=owners[0][0], embedder=minilm)
    views = {owners[0][0]: first}
    try:
        for t, _ in owners:
            if t not in views:
                views[t] = Memory(path=base, tenant=t, embedder=minilm, vectors=first.service.vectors,
                                  lexical=first.service.lexical)
        mine: dict[tuple[str, str], set[str]] = {}
        for k, (t, u) in enumerate(owners):
            msgs = [{"role": "user", "content": f"secret number {k}: the vault code is {k * 1111} near the lake",
                     "name": "Owner"}, {"role": "assistant", "content": "Noted, adoption and pottery too."}]
            mine[(t, u)] = set(views[t].add(messages=msgs, user_id=u, session_id="s", timestamp=T0))
        for t, u in owners:
            for q in ("vault code secret number 0", "lake adoption pottery Owner"):
                for budget in (None, 60):
                    hits = views[t].search(q, user_id=u, budget_tokens=budget)
                    assert hits, (t, u, q)
                    for h in hits:
                        assert h.user_id == u
                        assert set(h.source_ids) <= mine[(t, u)]
    finally:
        for _t, v in views.items():
            if v is not first:
                v.service.sql.close()
        first.close()


def test_lexical_index_is_rebuilt_from_sql(minilm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    m = Memory(path=tmp_path, embedder=minilm)
    ids = ingest(m)
    m.close()
    shutil.rmtree(Settings(data_dir=tmp_path).lexical_path)
    m = Memory(path=tmp_path, embedder=minilm)
    try:
        assert m.service.lexical.ids() == m.service.sql.live_unit_ids()
        hits = m.search("dinosaurs museum", user_id="u1", limit=1)
        assert hits[0].id == ids[3] and "lexical" in hits[0].components
        ctx_hits = m.service.lexical.search(m.service.scope("u1"), ["counselor agency"], 3, field="context")[0]
        assert ctx_hits  # context windows rebuilt too
    finally:
        m.close()


def test_delete_removes_lexical_documents(minilm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    m = Memory(path=tmp_path, embedder=minilm)
    try:
        ids = ingest(m)
        m.delete(ids[3], "u1")
        hits = m.search("dinosaurs museum", user_id="u1", limit=3)
        assert all(ids[3] not in h.source_ids for h in hits)
        m.delete_user("u1")
        assert m.service.lexical.count() == 0
    finally:
        m.close()


def test_video_offset_in_the_query(minilm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    m = Memory(path=tmp_path, embedder=minilm)
    try:
        times = [T0 + timedelta(minutes=i) for i in range(0, 20, 2)]
        caps = [f"a person walks in the kitchen, frame {i}" for i in range(len(times))]
        ids = m.add_frames(stream_id="cam1", user_id="u1", timestamps=times, captions=caps)
        hits = m.search("what happens in the kitchen at minute 12 of the video?", user_id="u1", limit=3)
        # frames become scene memories: the best hit is the scene that covers minute 12
        assert hits and hits[0].start_time <= T0 + timedelta(minutes=12) <= hits[0].end_time
        assert ids[6] in hits[0].source_ids
        assert hits[0].components["video"] == m.settings.retrieval.temporal_weight  # inside: full score
    finally:
        m.close()


def test_search_reports_where_its_time_went(store: tuple[Memory, list[str]]) -> None:
    m, _ = store
    assert m.service.last_search_timings() == {} or isinstance(m.service.last_search_timings(), dict)
    m.search("When did Melanie paint a sunrise last month?", user_id="u1", budget_tokens=300)
    t = m.service.last_search_timings()
    for stage in ("parse", "embed", "dense", "lexical", "sql", "hydrate", "rank", "total", "retrieve", "pack", "access"):
        assert stage in t and t[stage] >= 0.0, stage
    parts = sum(v for k, v in t.items() if k not in ("total", "retrieve", "pack", "access"))
    assert parts == pytest.approx(t["total"], abs=0.05)  # the stages account for the retriever's time
    assert t["retrieve"] >= t["total"] - 0.05


# -- a user-assistant memory: whose turns a question is about ---------------------------------------
ASSISTANT_CHAT = [
    (T0, [("user", "I'm thinking about getting a new tennis racket, any tips?"),
          ("assistant", "When choosing a new tennis racket, look at head size, weight, balance and string pattern. "
                        "A bigger head gives a larger sweet spot; a heavier racket is more stable. Many players buy "
                        "a racket at a specialty tennis shop where they can demo it first. I recommend a "
                        "16x19 string pattern and a grip size that fits your hand.")]),
    (T0 + timedelta(days=9), [
          ("user", "I finally bought my new tennis racket at the sports outlet near the mall."),
          ("assistant", "Congratulations on the new tennis racket! Where you buy a racket matters less than how it "
                        "feels: a sports outlet, a tennis shop or an online store can all sell a great racket. "
                        "Remember to restring your tennis racket regularly.")]),
]


@pytest.fixture(scope="module")
def chat_store(minilm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Memory, list[str]]]:  # type: ignore[no-untyped-def]
    m = Memory(path=tmp_path_factory.mktemp("chat"), embedder=minilm)
    ids: list[str] = []
    for i, (ts, turns) in enumerate(ASSISTANT_CHAT):
        ids += m.add(messages=[{"role": r, "content": t} for r, t in turns], user_id="u1", session_id=f"c{i}",
                     timestamp=ts)
    yield m, ids
    m.close()


@pytest.mark.parametrize(("query", "party"), [
    ("Where did I buy my new tennis racket?", "user"),
    ("What is my current record in the volleyball league?", "user"),
    ("Can you remind me what string pattern you recommended for my racket?", "assistant"),
    ("I wanted to follow up on our previous conversation about rackets.", "assistant"),
    ("What did Caroline say about adoption?", None),
    ("Where is the nearest tennis shop?", None),
])
def test_query_party(query: str, party: str | None) -> None:
    from memsvc.retrieval.hybrid import query_party

    assert query_party(query) == party


def test_first_person_question_prefers_the_users_own_turns(chat_store: tuple[Memory, list[str]]) -> None:
    m, ids = chat_store
    assert m.settings.retrieval.role_weight > 0
    hits = m.search("Where did I buy my new tennis racket?", user_id="u1", limit=4)
    assert hits[0].id == ids[2]  # the user's own statement, over the assistant's keyword-rich answers
    by_id = {h.id: h for h in hits}
    assert by_id[ids[2]].components["role"] == m.settings.retrieval.role_weight
    assert all("role" not in h.components for h in hits if h.id in (ids[1], ids[3]))
    # at a budget that holds one turn, it is the user's
    got = m.search("Where did I buy my new tennis racket?", user_id="u1", budget_tokens=30)
    assert [h.id for h in got] == [ids[2]]


def test_question_about_the_assistants_words_prefers_its_turns(chat_store: tuple[Memory, list[str]]) -> None:
    m, ids = chat_store
    hits = m.search("Can you remind me what string pattern you recommended?", user_id="u1", limit=4)
    assert hits[0].id == ids[1]
    assert hits[0].components["role"] == m.settings.retrieval.role_weight
    assert all("role" not in h.components for h in hits if h.id in (ids[0], ids[2]))


def test_named_speakers_get_no_role_part(store: tuple[Memory, list[str]]) -> None:
    m, _ = store  # LoCoMo-style: every turn is role "user" with a name
    hits = m.search("What did I say about my adoption agency?", user_id="u1", limit=6)
    assert hits and all("role" not in h.components for h in hits)
