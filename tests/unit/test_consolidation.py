"""Consolidation jobs as plain functions: summaries, dedupe, supersede, decay, cascade, idempotency
and kill safety (SQLite + the in-memory index + the hashing embedder: seconds, no model)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from memsvc import Memory, Settings
from memsvc.benchmarks.evidence import covered
from memsvc.consolidation import consolidate, consolidate_user, extract_facts, retention
from memsvc.consolidation import summarize as summarize_mod
from memsvc.stores.sql_schema import ConsolidationStateRow, UnitFactRow, UnitLinkRow, UnitRow, UnitSourceRow

T0 = datetime(2023, 5, 8, 13, 0, tzinfo=UTC)
NOW = datetime(2023, 7, 1, tzinfo=UTC)

DAY1 = [
    ("Ann", "Hey Mel! Good to see you again, how have you been?"),
    ("Mel", "Great thanks! I finally finished the mural at the library downtown."),
    ("Ann", "I moved to Lisbon last month and I love the light on the river there."),
    ("Mel", "Wow, that's amazing!"),
    ("Ann", "My job is nurse at the children's hospital, the night shifts are long."),
    ("Mel", "I started pottery classes on Tuesdays at the community center."),
    ("Ann", "I adopted a puppy named Rex, a golden retriever who loves the beach."),
    ("Mel", "Rex sounds adorable, send me photos of the golden retriever!"),
]
DAY2 = [
    ("Ann", "Big news: I moved to Porto for a research post at the university."),
    ("Mel", "Porto! How is the new flat near the university?"),
    ("Ann", "The flat is tiny but the view of the Douro river is wonderful."),
    ("Mel", "My pottery teacher says my bowls are improving every week."),
]


def _msgs(turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"role": "user", "content": t, "name": s} for s, t in turns]


def _settings(path: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = {"data_dir": path, "embedder": {"backend": "hashing"}, "vector": {"backend": "memory"},
                            "segmenter": {"options": {"max_size": 4}}}
    base.update(kw)
    return Settings(**base)


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[Memory]:
    m = Memory(_settings(tmp_path / "m", consolidation={"summaries_replace_episodes": True}))
    m.add(_msgs(DAY1), user_id="ann", session_id="s1", timestamp=T0)
    m.add(_msgs(DAY2), user_id="ann", session_id="s2", timestamp=T0 + timedelta(days=20))
    yield m
    m.close()


def snapshot(m: Memory) -> dict[str, Any]:
    """Everything consolidation may change: units, provenance, facts and indexed ids."""
    svc = m.service
    with svc.sql.session() as s:
        units = sorted((u.id, u.level, u.status, u.text, u.valid_to, u.deleted_at, u.index_state,
                        (u.meta or {}).get("kind"), (u.meta or {}).get("extract")) for u in s.scalars(select(UnitRow)))
        srcs = sorted((r.unit_id, r.event_id, r.position) for r in s.scalars(select(UnitSourceRow)))
        links = sorted((r.parent_id, r.child_id) for r in s.scalars(select(UnitLinkRow)))
        facts = sorted((f.unit_id, f.attribute, f.value) for f in s.scalars(select(UnitFactRow)))
    return {"units": units, "sources": srcs, "links": links, "facts": facts, "vectors": sorted(svc.vectors.ids())}


def derived(m: Memory, level: str) -> list[UnitRow]:
    svc = m.service
    with svc.sql.session() as s:
        return list(s.scalars(select(UnitRow).where(UnitRow.level == level, UnitRow.deleted_at.is_(None))))


def test_retention_follows_ebbinghaus_not_the_memorybank_bug() -> None:
    assert retention(0.8, 0.0, 1.0, 30.0) == pytest.approx(0.8)
    assert retention(1.0, 30.0, 1.0, 30.0) == pytest.approx(math.exp(-1))
    assert retention(1.0, 10, 1.0, 30) > retention(1.0, 20, 1.0, 30)  # fades with time
    assert retention(1.0, 10, 3.0, 30) > retention(1.0, 10, 1.0, 30)  # stronger memories fade slower


def test_fact_patterns_are_conservative() -> None:
    assert [(f.attribute, f.value) for f in extract_facts("I moved to New York last month!", "Ann")] == [
        ("residence", "new york")]
    assert [(f.attribute, f.value) for f in extract_facts("I work as a software engineer now", "Ann")] == [
        ("job", "software engineer")]
    assert extract_facts("Yesterday I went to the support group.", "Ann") == []
    assert extract_facts("I live in a small town", "Ann") == []


def test_summaries_are_searchable_extracts_with_provenance(mem: Memory) -> None:
    report = mem.consolidate()
    assert report["episode_summaries"] >= 3 and report["users"] == 1
    events = {r.id: r for r in mem.history("ann", limit=100)}
    summaries = derived(mem, "summary")
    assert summaries
    links = {(p, c) for p, c in snapshot(mem)["links"]}
    for s in [u for u in summaries if u.text]:
        hit = mem.get(s.id)
        assert hit.kind == "summary" and hit.source_ids
        assert set(hit.source_ids) <= set(events)
        for line in s.text.split("\n"):  # each line is (part of) a source event, copied verbatim
            speaker, body = line.split(": ", 1)
            assert any(e.name == speaker and body in (e.text or "") for e in events.values()), line
        assert any(p == s.id for p, _ in links)
    summarized = {c for p, c in links if p in {s.id for s in summaries}}
    assert {u.index_state for u in derived(mem, "episode") if u.id in summarized} == {"none"}  # summary stands in
    daily = [u for u in derived(mem, "semantic") if u.meta.get("kind") == "daily"]
    assert daily, "the first day has several episodes: a daily memory"
    hits = mem.search("golden retriever puppy", user_id="ann", levels=["summary", "semantic"], limit=5)
    assert hits and any("Rex" in h.text for h in hits)
    assert all(h.source_ids for h in hits)


def test_run_twice_gives_the_same_state(mem: Memory) -> None:
    mem.consolidate()
    first = snapshot(mem)
    mem.consolidate()
    assert snapshot(mem) == first
    consolidate_user(mem.service, "ann", jobs=["summarize", "semantic", "merge", "supersede", "dedupe"])
    assert snapshot(mem) == first


def test_exact_duplicates_from_retries_are_removed(mem: Memory) -> None:
    again = mem.add(_msgs(DAY1[4:7]), user_id="ann", session_id="s1", timestamp=T0)  # a retried write
    mem.add(_msgs([("Mel", "Thanks!")] * 2), user_id="ann", session_id="s1", timestamp=T0)
    before = mem.stats("ann")["events"]
    report = mem.consolidate()
    assert report["duplicates_removed"] == 3
    assert mem.stats("ann")["events"] == before - 3
    for eid in again:
        with pytest.raises(KeyError):
            mem.get(eid)
    texts = [r.text for r in mem.history("ann", limit=100)]
    assert texts.count("Thanks!") == 2  # short repeated utterances are not retries
    assert len(set(texts) - {"Thanks!"}) == len(texts) - 2


def test_newer_fact_supersedes_older_and_ranks_below(mem: Memory) -> None:
    mem.consolidate()
    svc = mem.service
    lisbon = next(u for u in derived(mem, "turn") if "Lisbon" in u.text)
    porto = next(u for u in derived(mem, "turn") if "Porto for" in u.text)
    assert lisbon.valid_to == porto.start_ts and lisbon.meta["superseded_by"] == porto.id
    assert porto.valid_to is None
    job = next(u for u in derived(mem, "turn") if "My job is nurse" in u.text)
    assert job.valid_to is None  # another attribute is untouched
    assert mem.get(lisbon.id).text == lisbon.text  # nothing deleted
    hits = svc.retriever.hydrate(svc.scope("ann"), [(lisbon.id, 0.9), (porto.id, 0.8)], "dense")
    assert [h.id for h in hits] == [porto.id, lisbon.id]
    # repeating the new fact keeps it valid; deleting it gives the old one its validity back
    mem.add(_msgs([("Ann", "I moved to Porto for a research post at the university.")]), user_id="ann",
            session_id="s3", timestamp=T0 + timedelta(days=30))
    mem.consolidate()
    assert next(u for u in derived(mem, "turn") if u.id == porto.id).valid_to is None
    for u in derived(mem, "turn"):
        if "Porto for" in u.text:
            mem.delete(u.id)
    mem.consolidate()
    assert next(u for u in derived(mem, "turn") if u.id == lisbon.id).valid_to is None


def test_near_duplicates_merge_with_provenance(tmp_path: Path) -> None:
    m = Memory(_settings(tmp_path / "m", consolidation={"dedupe_threshold": 0.8}))
    a = m.add(_msgs([("Ann", "My puppy Rex is a golden retriever who loves the beach.")]), user_id="ann",
              session_id="s1", timestamp=T0)
    b = m.add(_msgs([("Ann", "My puppy Rex is a golden retriever who loves the beach a lot.")]), user_id="ann",
              session_id="s2", timestamp=T0 + timedelta(days=2))
    m.add(_msgs([("Mel", "The library mural took me three months of weekends to finish.")]), user_id="ann",
          session_id="s2", timestamp=T0 + timedelta(days=2))
    report = m.consolidate()
    assert report["near_duplicates_merged"] == 1
    merged = [u for u in derived(m, "semantic") if u.meta.get("kind") == "merged"]
    assert len(merged) == 1
    hit = m.get(merged[0].id)
    assert set(hit.source_ids) == {a[0], b[0]}
    assert {u.status for u in derived(m, "turn") if u.id in (a[0], b[0])} == {"superseded"}
    found = m.search("golden retriever Rex", user_id="ann", levels=["turn", "semantic"], limit=5)
    assert found[0].id == merged[0].id and a[0] not in {h.id for h in found}
    state = snapshot(m)
    m.consolidate()
    assert snapshot(m) == state
    m.delete(merged[0].id)  # the merged unit goes; its members come back
    m.consolidate()
    assert {u.status for u in derived(m, "turn") if u.id in (a[0], b[0])} == {"closed"}
    m.close()


def test_cascade_delete_reaches_summaries_and_semantic_memories(mem: Memory) -> None:
    mem.consolidate()
    svc = mem.service
    rex = next(u for u in derived(mem, "turn") if "Rex" in u.text and u.text.startswith("Ann"))
    holders = [u for u in derived(mem, "summary") + derived(mem, "semantic") if rex.id in mem.get(u.id).source_ids]
    assert holders
    mem.delete(rex.id)
    for u in holders:
        with pytest.raises(KeyError):
            mem.get(u.id)
        assert u.id not in svc.vectors.ids()
    assert not any("Rex, a golden" in h.text for h in mem.search("puppy Rex", user_id="ann", limit=20))
    mem.consolidate()  # rebuilt from what is left, without the deleted turn
    assert all("named Rex" not in u.text for u in derived(mem, "summary") + derived(mem, "semantic"))
    mem.delete_user("ann")
    assert {k: v for k, v in mem.stats("ann").items() if v} == {}
    assert snapshot(mem)["facts"] == []
    with svc.sql.session() as s:
        assert s.scalar(select(func.count()).select_from(ConsolidationStateRow)) == 0


def test_decay_compresses_then_forgets_then_hard_deletes(tmp_path: Path) -> None:
    m = Memory(_settings(tmp_path / "m", consolidation={"decay": {"strength_days": 10, "grace_days": 5}}))
    ids = m.add(_msgs(DAY1), user_id="ann", session_id="s1", timestamp=T0)
    svc = m.service
    with svc.sql.session() as s:
        s.get(UnitRow, ids[2]).pinned = True
    created = derived(m, "turn")[0].created_at
    m.consolidate()
    # R = 0.5 * exp(-t/10): compress below 0.05 (t > 23 days), forget below 0.01 (t > 39 days)
    r = consolidate_user(svc, "ann", created + timedelta(days=30), jobs=["decay"])
    assert r["compressed"] > 0 and r["soft_deleted"] == 0
    m.search("Lisbon river light", user_id="ann")  # a retrieval strengthens what it returns
    svc.access.flush(svc, created + timedelta(days=30))
    r = consolidate_user(svc, "ann", created + timedelta(days=45), jobs=["decay"])
    assert r["soft_deleted"] > 0
    alive = {u.id for u in derived(m, "turn")}
    assert ids[2] in alive  # pinned never decays
    assert any(u.access_count > 0 and u.strength > 1 for u in derived(m, "turn") + derived(m, "episode"))
    r = consolidate_user(svc, "ann", created + timedelta(days=60), jobs=["decay"])
    assert r["hard_deleted"] > 0
    assert {e.id for e in m.history("ann", limit=100)} >= {ids[2]}
    m.close()


def test_tenant_overrides_switch_decay_off(tmp_path: Path) -> None:
    m = Memory(_settings(tmp_path / "m", tenant="acme",
                         consolidation={"tenants": {"acme": {"decay": {"enabled": False}}}}))
    m.add(_msgs(DAY1), user_id="ann", session_id="s1", timestamp=T0)
    r = consolidate_user(m.service, "ann", datetime.now(UTC) + timedelta(days=3650), jobs=["decay"])
    assert r == {"user": "ann", "compressed": 0, "soft_deleted": 0, "hard_deleted": 0, "seconds": r["seconds"]}
    m.close()


def test_killed_mid_job_leaves_no_duplicate_or_lost_memory(mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = summarize_mod.index_units

    def crash_after_sql(svc: Any, units: Any, vectors: Any = None) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed between the SQL write and the index write")
        return real(svc, units, vectors)

    monkeypatch.setattr(summarize_mod, "index_units", crash_after_sql)
    monkeypatch.setattr(summarize_mod, "BATCH", 1)
    with pytest.raises(KeyboardInterrupt):
        mem.consolidate()
    monkeypatch.setattr(summarize_mod, "index_units", real)
    mem.consolidate()
    crashed = snapshot(mem)
    # the same history consolidated without a crash gives exactly the same memories
    m2 = Memory(_settings(Path(mem.settings.data_dir).parent / "ref", consolidation={"summaries_replace_episodes": True}))
    m2.add(_msgs(DAY1), user_id="ann", session_id="s1", timestamp=T0)
    m2.add(_msgs(DAY2), user_id="ann", session_id="s2", timestamp=T0 + timedelta(days=20))
    m2.consolidate()
    ref = snapshot(m2)
    m2.close()
    assert sorted(u[1:] for u in crashed["units"]) == sorted(u[1:] for u in ref["units"])
    assert len(crashed["vectors"]) == len(ref["vectors"])
    assert all(u[6] in ("indexed", "none") for u in crashed["units"] if u[5] is None)


def test_embedded_scheduler_runs_in_the_background(tmp_path: Path) -> None:
    import time

    m = Memory(_settings(tmp_path / "m", consolidation={"embedded_schedule": True, "interval_s": 0.2}))
    m.add(_msgs(DAY1), user_id="ann", session_id="s1", timestamp=T0)
    deadline = time.monotonic() + 30
    while not derived(m, "summary") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert derived(m, "summary")
    m.close()
    assert m._scheduler is None


def test_consolidate_one_user(mem: Memory) -> None:
    mem.add(_msgs(DAY2), user_id="bob", session_id="b1", timestamp=T0)
    r = mem.consolidate(user_id="bob")
    assert r["users"] == 1
    assert all(u.user_id == "bob" for u in derived(mem, "summary"))
    assert consolidate(mem.service)["users"] == 1  # only ann has work left (decay still looks at bob)
    assert consolidate(mem.service)["users"] == 0


CHATTY = [
    ("Ann", "Oh wow, that is so lovely to hear, thank you! I finally ran the charity marathon in Porto with my "
            "brother Luis last Sunday. How was your weekend, anything fun?"),
    ("Mel", "Haha, awesome, congrats! Totally proud of you. We adopted a grey kitten called Pixel from the "
            "shelter on Friday. Anyway, how are you feeling?"),
    ("Ann", "Thanks so much, really glad you asked! My knee is sore after the marathon but the physio in Braga "
            "says three weeks of rest. Sounds good, right?"),
    ("Mel", "Oh no, that is a shame, hope it gets better soon! Pixel already knocked over my ceramic vase from "
            "the Lisbon market. Such a cheeky cat, haha."),
]


def test_turn_extracts_pack_more_evidence_per_token(tmp_path: Path) -> None:
    from memsvc.tokens import count_tokens

    m = Memory(_settings(tmp_path / "m"))
    ids = m.add(_msgs(CHATTY), user_id="ann", session_id="s1", timestamp=T0)
    full = {i: m.get(i, "ann").text for i in ids}  # as stored: "Ann: ... last Sunday [2023-05-07]. ..."
    q = "marathon Porto kitten Pixel knee physio vase"
    budget = sum(count_tokens(t) for t in full.values()) - 25  # every turn does not fit, every extract does

    def packed() -> list[Any]:
        return m.search(q, user_id="ann", budget_tokens=budget)

    before = packed()
    assert len(before) < len(ids) and all(h.text in full.values() for h in before)
    assert m.consolidate()["turn_extracts"] == len(ids)
    after = packed()
    assert len(after) == len(ids) > len(before)  # the budget now holds every turn
    for h in after:
        (src,) = h.source_ids
        assert h.metadata["full_text"] == full[src] and "extract" not in h.metadata
        assert h.text != full[src] and count_tokens(h.text) < count_tokens(full[src])
        assert covered(full[src], h.text)  # the extract keeps the turn's substance (the evidence rule)
        assert h.text.split(": ", 1)[0] == full[src].split(": ", 1)[0]  # speaker kept
        assert all(sent in full[src] for sent in h.text.split(": ", 1)[1].split(". "))  # verbatim sentences
    assert "Pixel" in m.context(q, user_id="ann", budget_tokens=budget)
    plain = m.search(q, user_id="ann", limit=10)  # without a budget: the turns as written
    assert {h.text for h in plain} <= set(full.values()) and all("extract" not in h.metadata for h in plain)
    assert {i: m.get(i, "ann").text for i in ids} == full  # the stored turns never change
    assert m.consolidate()["turn_extracts"] == 0  # idempotent

    m.service.settings.consolidation.episode_extracts = True  # the whole episode, as its turns' extracts
    (ep,) = packed()
    assert ep.level.value == "episode" and set(ep.source_ids) == set(ids)
    assert ep.metadata["full_text"] == "\n".join(full[i] for i in ids)
    assert ep.text.split("\n") == [h.text for h in sorted(after, key=lambda h: ids.index(h.id))]
    m.service.settings.consolidation.episode_extracts = False
    m.service.settings.consolidation.turn_extracts = False  # switched off: turns are packed as written
    assert all(h.text in full.values() for h in packed())
    m.service.settings.consolidation.turn_extracts = True
    changed = full[ids[1]] + " Pixel sleeps all day."
    with m.service.sql.session() as s:  # a turn whose text changed after its extract (decay compressed it)
        s.get(UnitRow, ids[1]).text = changed
    assert [(h.text, "full_text" in h.metadata) for h in packed() if h.id == ids[1]] in ([], [(changed, False)])
    assert m.consolidate(jobs=["extract"])["turn_extracts"] == 1  # extracted again from the new text
    m.close()


def test_bench_consolidation_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``memsvc bench consolidation`` on a tiny LoCoMo file: before/after figures and the result file."""
    import json

    from typer.testing import CliRunner

    from memsvc.cli import app
    from tests.bench_fixtures import write_locomo

    monkeypatch.setenv("MEMSVC_EMBEDDER__BACKEND", "hashing")
    data = write_locomo(tmp_path)
    res = CliRunner().invoke(app, ["bench", "consolidation", "--data", str(data), "--budgets", "60,100000",
                                   "--settings", '{"consolidation": {"summary_ratio": 0.5}}',
                                   "--results-dir", str(tmp_path / "res")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    out = json.loads(res.stdout)
    assert out["conversations"] == 2 and out["turns"] == 11 and out["questions"] == 7
    for phase in ("before", "after"):
        assert set(out[phase]["recall"]) == {"60", "100000"}
        assert out[phase]["recall"]["100000"] == 100.0  # a budget that holds everything
        assert out[phase]["units_turn"] == 11 and out[phase]["stored_units"] >= out[phase]["units"]
    assert out["after"]["stored_units"] > out["before"]["stored_units"]  # summaries were written
    assert out["jobs"]["episode_summaries"] >= 1 and out["s_per_1000_turns"] > 0
    assert out["delta"]["100000"] == 0.0
    (f,) = (tmp_path / "res").glob("consolidation-*.json")
    doc = json.loads(f.read_text())
    assert doc["result"] == out and doc["settings"]["consolidation"]["summary_ratio"] == 0.5
    par = CliRunner().invoke(app, ["bench", "consolidation", "--data", str(data), "--budgets", "60,100000",
                                   "--settings", '{"consolidation": {"summary_ratio": 0.5}}', "--jobs", "2",
                                   "--results-dir", str(tmp_path / "res2")])
    assert par.exit_code == 0, par.output + repr(par.exception)
    two = json.loads(par.stdout)  # two processes: the same figures (times aside)
    timed = ("consolidate_s", "s_per_1000_turns")
    assert {k: v for k, v in two.items() if k not in timed} == {k: v for k, v in out.items() if k not in timed}
    bad = CliRunner().invoke(app, ["bench", "consolidation", "--data", str(data), "--settings", "[1]"])
    assert bad.exit_code == 2
