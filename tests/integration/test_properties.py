"""Property tests (hypothesis) of the SDK boundary: every bad input raises a ``memsvc.exceptions`` type
and leaves what is stored byte-identical; valid arbitrary unicode round-trips exactly.

The hashing embedder keeps them fast (the embedder plays no part in input handling); each property runs
a bounded number of examples against one real embedded store (SQLite + qdrant-edge)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsvc import Memory, Settings
from memsvc import exceptions as ex
from memsvc._types import Level
from memsvc._wire import record_to_json
from memsvc.models import ChatEvent, VideoEvent

T0 = datetime(2023, 5, 8, 9, 30, tzinfo=UTC)
MAX_CHARS = 300
USERS = ["u1", "u2"]
PROPS = settings(max_examples=40, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def mem(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    path: Path = tmp_path_factory.mktemp("props")
    m = Memory(Settings(data_dir=path, embedder={"backend": "hashing"}, limits={"max_text_chars": MAX_CHARS,
                                                                                  "max_query_chars": MAX_CHARS}))
    m.add([{"role": "user", "content": "I adopted a puppy named Rex", "client_id": "c-1"},
           {"role": "assistant", "content": "Congratulations on Rex!"}], user_id="u1", session_id="s1", timestamp=T0)
    m.add("my sister moved to Lisbon", user_id="u2", timestamp=T0 + timedelta(days=1))
    m.add_frames("cam", "u1", [T0, T0 + timedelta(seconds=1)], embeddings=np.eye(2, 8, dtype=np.float32),
                 captions=["a door opens", None])
    yield m
    m.close()


def snapshot(m: Memory, users: list[str] = USERS) -> str:
    """Everything a caller can read back: tenant and per-user counts, full histories, each record."""
    out: dict[str, Any] = {"stats": m.stats()}
    for u in users:
        recs = m.history(u, limit=10_000)
        out[u] = {"stats": m.stats(u), "history": [record_to_json(r) for r in recs],
                  "get": [record_to_json(m.get(r.id, user_id=u)) for r in recs]}
    return json.dumps(out, sort_keys=True, default=str)


def assert_rejected(m: Memory, call: Any) -> None:
    before = snapshot(m)
    with pytest.raises(ex.MemsvcError) as info:
        call()
    assert isinstance(info.value, ex.InvalidInputError | ex.RecordNotFound), repr(info.value)
    assert snapshot(m) == before


# -- strategies ------------------------------------------------------------------------------------
blank = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003\u3000", max_size=20)
too_long = st.integers(MAX_CHARS + 1, MAX_CHARS * 4).map(lambda n: "é" * n)
with_nul = st.tuples(st.text(max_size=20), st.text(max_size=20)).map(lambda p: f"{p[0]}\x00{p[1]}")
surrogate = st.tuples(st.text(max_size=10), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)).map(
    lambda p: f"ok {p[0]}{p[1]}")
not_a_str = st.one_of(st.none(), st.integers(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2),
                      st.binary(max_size=5))
bad_text = st.one_of(blank, too_long, with_nul, surrogate, not_a_str)
bad_id = st.one_of(blank, st.integers(257, 600).map(lambda n: "x" * n), with_nul, surrogate,
                   not_a_str.filter(lambda v: v is not None))
naive = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))
aware_out_of_range = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 1, 23), timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(9999, 12, 30, 1), max_value=datetime(9999, 12, 31, 23), timezones=st.just(UTC)),
)
bad_time = st.one_of(
    naive, aware_out_of_range,
    st.sampled_from([math.nan, math.inf, -math.inf, 1e20, -1e20, True]),
    st.text(max_size=30).filter(lambda s: not _iso(s)),
    naive.map(lambda d: d.isoformat()),
)
good_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                    max_size=MAX_CHARS).filter(lambda s: s.strip() != "")


def _nested(depth: int) -> Any:
    v: Any = "leaf"
    for _ in range(depth):
        v = {"k": v}
    return v


def _iso(s: str) -> bool:
    try:
        datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@st.composite
def bad_add(draw: st.DrawFn) -> dict[str, Any]:
    """``Memory.add`` arguments with exactly one thing wrong (possibly after good messages)."""
    good = [{"role": "user", "content": f"fine message {i}"} for i in range(draw(st.integers(0, 3)))]
    what = draw(st.sampled_from(["content", "user_id", "session_id", "timestamp", "msg_timestamp", "role",
                                 "name", "client_id", "key", "messages", "metadata"]))
    args: dict[str, Any] = {"user_id": draw(st.sampled_from(USERS)), "session_id": "s1", "timestamp": T0}
    msg: dict[str, Any] = {"role": "user", "content": "a good message"}
    if what == "content":
        msg["content"] = draw(bad_text)
    elif what in ("user_id", "session_id"):
        args[what] = draw(bad_id.filter(lambda v: v is not None))
    elif what == "timestamp":
        args["timestamp"] = draw(bad_time)
    elif what == "msg_timestamp":
        msg["timestamp"] = draw(bad_time.filter(lambda v: v is not None))
    elif what == "role":
        msg["role"] = draw(st.one_of(st.text(max_size=10).filter(
            lambda r: r.lower() not in {"user", "assistant", "system", "tool", "human", "ai"}), not_a_str))
    elif what in ("name", "client_id"):
        msg[what] = draw(bad_id.filter(lambda v: v is not None))
    elif what == "key":
        msg[draw(st.text(min_size=1, max_size=8).filter(
            lambda k: k not in {"role", "content", "name", "timestamp", "id", "client_id", "metadata"}))] = 1
    elif what == "messages":
        return {**args, "messages": draw(st.one_of(st.just([]), st.integers(), st.lists(not_a_str, min_size=1,
                                                                                        max_size=3)))}
    else:
        bad_value = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, object(), {1: "int key"}, b"raw"]),
                              with_nul, surrogate, st.integers(40, 60).map(_nested))
        meta = draw(st.one_of(st.integers(), st.text(min_size=1), st.lists(st.integers(), min_size=1),
                              st.dictionaries(st.sampled_from(["k", "deep"]), bad_value, min_size=1)))
        if isinstance(meta, dict) and draw(st.booleans()):
            msg["metadata"] = meta
        else:
            args["metadata"] = meta
    pos = draw(st.integers(0, len(good)))
    return {**args, "messages": [*good[:pos], msg, *good[pos:]]}


# -- properties ------------------------------------------------------------------------------------
@PROPS
@given(args=bad_add())
def test_bad_add_is_typed_and_stores_nothing(mem: Memory, args: dict[str, Any]) -> None:
    assert_rejected(mem, lambda: mem.add(**args))


@st.composite
def bad_frames(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    args: dict[str, Any] = {"stream_id": "cam", "user_id": "u1",
                            "timestamps": [T0 + timedelta(minutes=5, seconds=i) for i in range(n)]}
    what = draw(st.sampled_from(["nonfinite", "shape", "dim", "zero", "not_numeric", "timestamps", "captions",
                                 "stream_id"]))
    emb = np.ones((n, 8), dtype=np.float64)
    if what == "nonfinite":
        emb[draw(st.integers(0, n - 1)), draw(st.integers(0, 7))] = draw(st.sampled_from([np.nan, np.inf, -np.inf,
                                                                                             1e39]))
    elif what == "shape":
        emb = np.ones((draw(st.integers(0, 5).filter(lambda k: k != n)), 8))
    elif what == "dim":  # the stream's frames are 8-dimensional
        emb = np.ones((n, draw(st.sampled_from([1, 7, 9, 384]))))
    elif what == "zero":
        emb[draw(st.integers(0, n - 1))] = 0.0
    elif what == "not_numeric":
        args["embeddings"] = draw(st.sampled_from([[["a"] * 8] * n, [[1.0] * 8, [1.0]] * n, "vectors", {"a": 1}]))
    elif what == "timestamps":
        args["timestamps"] = [*args["timestamps"][:-1], draw(bad_time)]
    elif what == "captions":
        args["captions"] = [draw(bad_text.filter(lambda v: v is not None))] * n
    else:
        args["stream_id"] = draw(bad_id)
    args.setdefault("embeddings", emb)
    return args


@PROPS
@given(args=bad_frames())
def test_bad_frames_are_typed_and_store_nothing(mem: Memory, args: dict[str, Any]) -> None:
    assert_rejected(mem, lambda: mem.add_frames(**args))


@st.composite
def bad_read(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    what = draw(st.sampled_from(["query", "user_id", "limit", "budget", "time_range", "levels", "query_time",
                                 "history", "get"]))
    args: dict[str, Any] = {"query": "puppy", "user_id": draw(st.sampled_from(USERS))}
    if what == "query":
        args["query"] = draw(bad_text)
    elif what == "user_id":
        args["user_id"] = draw(bad_id)
    elif what == "limit":
        args["limit"] = draw(st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=3), st.just(True)))
    elif what == "budget":
        args["budget_tokens"] = draw(st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=3)))
    elif what == "time_range":
        args["time_range"] = draw(st.one_of(
            st.tuples(bad_time, st.none()), st.tuples(st.none(), bad_time), st.just((T0, T0 - timedelta(1))),
            st.lists(st.none(), max_size=4).filter(lambda v: len(v) != 2), st.just("2023")))
    elif what == "levels":
        args["levels"] = draw(st.lists(st.text(max_size=8).filter(lambda s: s not in {lv.value for lv in Level}),
                                       min_size=1, max_size=3))
    elif what == "query_time":
        args["query_time"] = draw(bad_time)
    elif what == "history":
        return "history", {"user_id": draw(st.sampled_from(USERS)),
                           draw(st.sampled_from(["limit", "offset"])): draw(st.one_of(
                               st.integers(max_value=-1), st.floats(), st.text(max_size=3), st.just(10**30)))}
    else:
        return "get", {"memory_id": draw(st.one_of(bad_id, st.uuids().map(str))),
                       "user_id": draw(st.sampled_from([*USERS, None]))}
    return draw(st.sampled_from(["search", "context"])), args


@PROPS
@given(call=bad_read())
def test_bad_reads_are_typed(mem: Memory, call: tuple[str, dict[str, Any]]) -> None:
    name, args = call
    if name == "history" and 10**30 in (args.get("limit"), args.get("offset")):
        # a huge page or offset is valid: an empty or full page, never an overflow
        assert isinstance(getattr(mem, name)(**args), list)
        return
    assert_rejected(mem, lambda: getattr(mem, name)(**args))


@PROPS
@given(user=st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and "\x00" not in s),
       query=good_text)
def test_unknown_users_read_empty(mem: Memory, user: str, query: str) -> None:
    if user in USERS:
        return
    before = snapshot(mem)
    assert mem.search(query, user_id=user) == []
    assert mem.context(query, user_id=user, budget_tokens=100) == ""
    assert mem.history(user) == []
    assert mem.stats(user)["events"] == 0
    with pytest.raises(ex.RecordNotFound):
        mem.get(mem.history("u1", limit=1)[0].id, user_id=user)
    assert snapshot(mem) == before


@PROPS
@given(texts=st.lists(good_text, min_size=1, max_size=4), name=st.none() | good_text.filter(lambda s: len(s) <= 256),
       user=good_text.filter(lambda s: len(s) <= 256),
       ts=st.datetimes(min_value=datetime(1, 1, 3), max_value=datetime(9999, 12, 29),
                       timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])))
def test_valid_unicode_round_trips(mem: Memory, texts: list[str], name: str | None, user: str, ts: datetime) -> None:
    ids = mem.add([{"role": "user", "content": t, "name": name} for t in texts], user_id=user, session_id=user,
                  timestamp=ts)
    assert len(ids) == len(texts)
    events = mem.history(user, session_id=user, limit=10_000)[-len(ids):]
    assert [r.id for r in events] == ids
    for rec, t in zip(events, texts, strict=True):
        assert (rec.kind, rec.text, rec.name, rec.user_id, rec.session_id) == ("event", t, name, user, user)
        assert rec.start_time == ts.astimezone(UTC)
        assert t in mem.get(rec.id, user_id=user).text  # the turn unit holds the text (speaker-prefixed)
    hits = mem.search(texts[0], user_id=user, limit=50)
    assert all(h.user_id == user for h in hits)
    assert any(i in h.source_ids for h in hits for i in ids)
    mem.delete_user(user)
    assert mem.history(user) == []


@PROPS
@given(cids=st.lists(st.sampled_from(["a", "b", "c", "é", "c-1"]), min_size=1, max_size=6),
       user=st.sampled_from(["dup1", "dup2"]))
def test_duplicate_client_ids_store_once(mem: Memory, cids: list[str], user: str) -> None:
    """A client id repeated within a call or across calls maps to one stored event (the first text)."""
    known = {r.id: r for r in mem.history(user, limit=10_000)}
    msgs = [{"role": "user", "content": f"text {i} for {c}", "client_id": c} for i, c in enumerate(cids)]
    ids = mem.add(msgs, user_id=user, timestamp=T0)
    by_cid: dict[str, str] = {}
    for c, i in zip(cids, ids, strict=True):
        assert by_cid.setdefault(c, i) == i
    after = {r.id: r for r in mem.history(user, limit=10_000)}
    assert set(after) == set(known) | set(ids)
    assert len(after) - len(known) == len({i for i in ids if i not in known})
    for i in known:  # nothing stored before was changed
        assert record_to_json(after[i]) == record_to_json(known[i])
    assert mem.add(msgs, user_id=user, timestamp=T0) == ids  # idempotent
    assert len(mem.history(user, limit=10_000)) == len(after)


@PROPS
@given(jobs=st.one_of(st.lists(st.text(max_size=12), min_size=1, max_size=3).filter(
    lambda js: any(j not in {"close", "dedupe", "supersede", "summarize", "semantic", "merge", "decay", "recompress"}
                   for j in js)), st.just("close"), st.lists(st.integers(), min_size=1, max_size=2)),
       user=st.none() | st.sampled_from(USERS))
def test_bad_consolidation_jobs_are_typed_and_change_nothing(mem: Memory, jobs: Any, user: str | None) -> None:
    assert_rejected(mem, lambda: mem.consolidate(user_id=user, jobs=jobs))


@st.composite
def bad_event_batch(draw: st.DrawFn) -> list[Any]:
    """Valid chat and frame events with one bad frame among them (``add_events`` is all or nothing)."""
    good: list[Any] = [ChatEvent(user_id=draw(st.sampled_from(USERS)), text=f"chat event {i}", timestamp=T0)
                       for i in range(draw(st.integers(1, 3)))]
    good += [VideoEvent(user_id="u2", stream_id="yard", timestamp=T0 + timedelta(seconds=i),
                        embedding=np.ones(4, dtype=np.float32) * (i + 1)) for i in range(draw(st.integers(0, 2)))]
    what = draw(st.sampled_from(["dim", "nan", "naive", "empty", "caption"]))
    ts = T0 + timedelta(minutes=9)
    bad = {
        "dim": VideoEvent(user_id="u1", stream_id="cam", timestamp=ts, embedding=np.ones(draw(st.sampled_from([4, 16])))),
        "nan": VideoEvent(user_id="u1", stream_id="cam", timestamp=ts, embedding=np.full(8, np.nan)),
        "naive": VideoEvent(user_id="u1", stream_id="cam", timestamp=ts.replace(tzinfo=None), caption="x"),
        "empty": VideoEvent(user_id="u1", stream_id="cam", timestamp=ts),
        "caption": VideoEvent(user_id="u1", stream_id="cam", timestamp=ts, caption=draw(bad_text.filter(
            lambda v: v is not None))),
    }[what]
    return draw(st.permutations([*good, bad]))


@PROPS
@given(events=bad_event_batch())
def test_bad_event_batches_store_nothing(mem: Memory, events: list[Any]) -> None:
    assert_rejected(mem, lambda: mem.add_events(events))
