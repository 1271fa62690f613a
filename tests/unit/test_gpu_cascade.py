"""The episode KV store follows memory: SDK deletes, delete_user and consolidation (merge, recompress, decay)
invalidate stored caches (files gone, ``load`` raises ``KVCacheInvalidated``) through the service's
unit listeners. Real SQLite, the hashing embedder, a tiny random Llama with a byte-level tokenizer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import transformers  # noqa: F401  (a [dev] dependency: a broken install fails here)
from sqlalchemy import select  # noqa: E402

from memsvc import Memory, Settings  # noqa: E402
from memsvc.consolidation import consolidate_user  # noqa: E402
from memsvc.exceptions import KVCacheInvalidated, RecordNotFound  # noqa: E402
from memsvc.gpu.kv_files import EpisodeKVInvalidator  # noqa: E402
from memsvc.gpu.llm import LLM  # noqa: E402
from memsvc.listeners import UnitChange  # noqa: E402
from memsvc.stores.sql_schema import UnitRow  # noqa: E402
from tests.unit.gpu_fixtures import save_tiny_chat_model  # noqa: E402

T0 = datetime(2023, 5, 8, 13, 0, tzinfo=UTC)
ANN = [
    ("Ann", "I adopted a puppy named Rex, a golden retriever."),
    ("Mel", "Rex sounds adorable, send me photos!"),
    ("Ann", "He loves the beach near Lisbon."),
]


def _msgs(turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"role": "user", "content": t, "name": s} for s, t in turns]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_chat_model(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture
def kv_dir(tmp_path: Path) -> Path:
    return tmp_path / "kv"


@pytest.fixture
def llm(model_dir: Path, kv_dir: Path) -> LLM:
    return LLM(str(model_dir), device="cpu", press="knorm", press_options={"compression_ratio": 0.5},
               episode_store=kv_dir)


def _settings(path: Path, kv_dir: Path, **kw: Any) -> Settings:
    return Settings(data_dir=path, embedder={"backend": "hashing"}, vector={"backend": "memory"},
                    lexical={"backend": "memory"}, gpu={"episode_kv_dir": kv_dir}, **kw)


@pytest.fixture
def mem(tmp_path: Path, kv_dir: Path) -> Iterator[Memory]:
    m = Memory(_settings(tmp_path / "m", kv_dir))
    yield m
    m.close()


def _units(m: Memory, user: str, level: str) -> list[UnitRow]:
    with m.service.sql.session() as s:
        return list(s.scalars(select(UnitRow).where(UnitRow.user_id == user, UnitRow.level == level,
                                                    UnitRow.deleted_at.is_(None))))


def _cache(llm: LLM, m: Memory, unit_id: str, user: str) -> tuple[str, Path]:
    """Prefill and store the unit's KV (as the runtime does); returns its text and file."""
    text = m.service.get(unit_id, user).text
    _, hit = llm.episode_cache(unit_id, text, scope=f"{m.service.tenant}/{user}")
    assert not hit
    [path] = llm.episode_store.entry_paths(unit_id)
    return text, path


def _load(llm: LLM, unit_id: str, text: str) -> Any:
    store = llm.episode_store
    prefix, _ = llm.split_prompt("?", text)
    return store.load(unit_id, content_hash=store.content_hash(prefix), press_spec=llm.press_spec(),
                      dtype=llm.dtype)


def test_no_kv_store_configured_means_no_listener(tmp_path: Path) -> None:
    with Memory(Settings(data_dir=tmp_path, embedder={"backend": "hashing"}, vector={"backend": "memory"},
                         lexical={"backend": "memory"})) as m:
        assert m.service.listeners == []
    with Memory(_settings(tmp_path / "b", tmp_path / "kv")) as m:
        assert [type(x) for x in m.service.listeners] == [EpisodeKVInvalidator]
        assert m.for_tenant("acme").service.listeners is m.service.listeners


def test_deleting_a_member_event_invalidates_the_episode_kv(mem: Memory, llm: LLM) -> None:
    ids = mem.add(_msgs(ANN), user_id="ann", session_id="s1", timestamp=T0)
    mem.add(_msgs(ANN), user_id="bob", session_id="s1", timestamp=T0)
    [episode] = _units(mem, "ann", "episode")
    [bob_episode] = _units(mem, "bob", "episode")
    text, path = _cache(llm, mem, episode.id, "ann")
    bob_text, bob_path = _cache(llm, mem, bob_episode.id, "bob")
    assert _load(llm, episode.id, text).meta["unit_id"] == episode.id

    mem.delete(ids[1], user_id="ann")  # a member event: the episode is rebuilt without it

    assert not path.exists()
    with pytest.raises(KVCacheInvalidated, match="changed by rebuild"):
        _load(llm, episode.id, text)
    with pytest.raises(KVCacheInvalidated):  # a caller holding the old text cannot bring it back
        llm.episode_cache(episode.id, text)
    new_text = mem.service.get(episode.id, "ann").text
    assert new_text != text and "Rex sounds adorable" not in new_text
    _, hit = llm.episode_cache(episode.id, new_text)  # the rebuilt episode is cached afresh
    assert not hit and _load(llm, episode.id, new_text).meta["unit_id"] == episode.id
    assert bob_path.exists() and _load(llm, bob_episode.id, bob_text)  # another user's KV is untouched


def test_deleting_the_episode_unit_is_final(mem: Memory, llm: LLM) -> None:
    mem.add(_msgs(ANN), user_id="ann", session_id="s1", timestamp=T0)
    [episode] = _units(mem, "ann", "episode")
    turn = _units(mem, "ann", "turn")[0]
    text, path = _cache(llm, mem, episode.id, "ann")
    turn_text, turn_path = _cache(llm, mem, turn.id, "ann")

    mem.delete(episode.id, user_id="ann")

    assert not path.exists() and turn_path.exists()
    with pytest.raises(KVCacheInvalidated, match="deleted by delete"):
        _load(llm, episode.id, text)
    with pytest.raises(KVCacheInvalidated):
        llm.answer("dog?", episode=(episode.id, text), max_new_tokens=2)
    assert _load(llm, turn.id, turn_text)
    with pytest.raises(RecordNotFound) as info:  # never stored: a plain miss, not an invalidation
        _load(llm, "never-stored", text)
    assert not isinstance(info.value, KVCacheInvalidated)


def test_delete_user_invalidates_every_cache_of_the_user(mem: Memory, llm: LLM) -> None:
    mem.add(_msgs(ANN), user_id="ann", session_id="s1", timestamp=T0)
    mem.add(_msgs(ANN), user_id="bob", session_id="s1", timestamp=T0)
    ann = [_units(mem, "ann", "episode")[0], _units(mem, "ann", "turn")[0]]
    cached = [_cache(llm, mem, u.id, "ann") for u in ann]
    bob = _units(mem, "bob", "episode")[0]
    bob_text, bob_path = _cache(llm, mem, bob.id, "bob")
    # a cache written for a unit id memsvc does not know, tagged with ann's scope, goes too
    llm.episode_cache("external-ann", "Ann's notes", scope=f"{mem.service.tenant}/ann")
    [external] = llm.episode_store.entry_paths("external-ann")

    mem.delete_user("ann")

    assert not any(p.exists() for _, p in cached) and not external.exists()
    for u, (text, _) in zip(ann, cached, strict=True):
        with pytest.raises(KVCacheInvalidated, match="user_deleted by delete_user"):
            _load(llm, u.id, text)
        with pytest.raises(KVCacheInvalidated):
            llm.episode_cache(u.id, text)
    assert bob_path.exists() and _load(llm, bob.id, bob_text)


def test_consolidation_merge_invalidates_the_members(tmp_path: Path, kv_dir: Path, llm: LLM) -> None:
    with Memory(_settings(tmp_path / "m", kv_dir, consolidation={"dedupe_threshold": 0.8})) as m:
        a = m.add(_msgs([("Ann", "My puppy Rex is a golden retriever who loves the beach.")]), user_id="ann",
                  session_id="s1", timestamp=T0)
        m.add(_msgs([("Ann", "My puppy Rex is a golden retriever who loves the beach a lot.")]), user_id="ann",
              session_id="s2", timestamp=T0 + timedelta(days=2))
        text, path = _cache(llm, m, a[0], "ann")

        assert consolidate_user(m.service, "ann", jobs=["merge"])["near_duplicates_merged"] == 1

        assert not path.exists()
        with pytest.raises(KVCacheInvalidated, match="evicted by merge"):
            _load(llm, a[0], text)
        [merged] = [u for u in _units(m, "ann", "semantic") if (u.meta or {}).get("kind") == "merged"]
        merged_text, merged_path = _cache(llm, m, merged.id, "ann")
        m.delete(merged.id, user_id="ann")  # the merge is undone: its cache goes, the members come back
        consolidate_user(m.service, "ann", jobs=["merge"])
        assert not merged_path.exists()
        with pytest.raises(KVCacheInvalidated, match="deleted by delete"):
            _load(llm, merged.id, merged_text)
        _, hit = llm.episode_cache(a[0], text)  # an evicted unit that came back may be cached again
        assert not hit and _load(llm, a[0], text)


def test_consolidation_recompress_invalidates_the_episode(tmp_path: Path, kv_dir: Path, llm: LLM) -> None:
    settings = _settings(tmp_path / "m", kv_dir, consolidation={"recompress_after_days": 1.0, "idle_close_s": 60})
    with Memory(settings) as m:
        m.add(_msgs(ANN * 2), user_id="ann", session_id="s1", timestamp=T0)
        later = datetime.now(UTC) + timedelta(days=2)
        consolidate_user(m.service, "ann", now=later, jobs=["close"])
        [episode] = _units(m, "ann", "episode")
        text, path = _cache(llm, m, episode.id, "ann")

        assert consolidate_user(m.service, "ann", now=later, jobs=["recompress"])["recompressed"] == 1

        assert not path.exists() and m.service.get(episode.id, "ann").text != text
        with pytest.raises(KVCacheInvalidated, match="changed by recompress"):
            _load(llm, episode.id, text)


class Exploding:
    def units_changed(self, change: UnitChange) -> None:
        raise OSError("disk full")


def test_a_failing_listener_does_not_fail_the_delete(mem: Memory, llm: LLM, caplog: pytest.LogCaptureFixture) -> None:
    ids = mem.add(_msgs(ANN), user_id="ann", session_id="s1", timestamp=T0)
    [episode] = _units(mem, "ann", "episode")
    _, path = _cache(llm, mem, episode.id, "ann")
    mem.service.add_listener(Exploding())
    mem.service.listeners.reverse()  # the failing one first: the KV invalidator must still run
    assert mem.delete(ids[0], user_id="ann") >= 1
    assert not path.exists()
    assert "unit listener" in caplog.text and "disk full" in caplog.text


def test_the_invalidator_does_not_import_torch() -> None:
    code = ("import sys; from memsvc.gpu.kv_files import EpisodeKVInvalidator; import memsvc.service; "
            "print(','.join(m for m in ('torch', 'transformers', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_decay_soft_then_hard_delete_invalidates(tmp_path: Path, kv_dir: Path, llm: LLM) -> None:
    with Memory(_settings(tmp_path / "m", kv_dir)) as m:
        m.add(_msgs(ANN), user_id="ann", session_id="s1", timestamp=T0)
        turn = _units(m, "ann", "turn")[0]
        text, path = _cache(llm, m, turn.id, "ann")
        faded = datetime.now(UTC) + timedelta(days=3650)  # retention far below forget_below

        consolidate_user(m.service, "ann", now=faded, jobs=["decay"])  # soft delete: restorable
        assert not path.exists()
        with pytest.raises(KVCacheInvalidated, match="evicted by decay"):
            _load(llm, turn.id, text)

        consolidate_user(m.service, "ann", now=faded + timedelta(days=31), jobs=["decay"])  # hard delete
        with pytest.raises(RecordNotFound):
            m.service.get(turn.id, "ann")
        with pytest.raises(KVCacheInvalidated, match="deleted by delete"):
            _load(llm, turn.id, text)
        with pytest.raises(KVCacheInvalidated, match="was deleted"):  # and it cannot be cached again
            llm.episode_cache(turn.id, text)
