"""The default segmenter in the write path: episodes never mix users or sessions; pauses close them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from memsvc import Memory
from memsvc.config import Settings
from memsvc.pipeline import unit_text

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
LINES = [
    "I adopted a puppy last week.", "What breed is it?", "A beagle, very playful.", "Beagles love walks.",
    "Did you watch the match?", "Yes, we scored twice.", "The goalkeeper was great.", "Hope we win the league.",
    "I'm baking bread tonight.", "Sourdough?", "Yes, a three year old starter.", "Fresh bread smells great.",
]


def _memory(path: Path) -> Memory:
    settings = Settings(data_dir=path, embedder={"backend": "hashing"}, vector={"backend": "memory"})
    assert settings.segmenter.backend == "boundary"
    return Memory(settings)


def test_episodes_never_mix_users_or_sessions(tmp_path: Path) -> None:
    m = _memory(tmp_path / "m")
    owner: dict[str, tuple[str, str]] = {}
    t = T0
    for i, line in enumerate(LINES * 2):
        for user, session in (("ann", "s1"), ("ann", "s2"), ("bob", "s1")):
            name = "Ann" if user == "ann" and i % 2 == 0 else ("Bob" if user == "bob" else "Cat")
            ids = m.add([{"role": "user", "content": f"{line} ({session})", "name": name}], user_id=user,
                        session_id=session, timestamp=t)
            owner[ids[0]] = (user, session)
        t += timedelta(seconds=20)
    for user in ("ann", "bob"):
        hits = m.search("puppy bread match", user_id=user, limit=100, levels=["episode"])
        assert hits
        for h in hits:
            assert {owner[s] for s in h.source_ids} == {(user, h.session_id)}
    m.close()


def test_a_pause_closes_the_episode(tmp_path: Path) -> None:
    m = _memory(tmp_path / "p")
    first = m.add([{"role": "user", "content": c} for c in LINES[:3]], user_id="u", session_id="s", timestamp=T0)
    later = m.add([{"role": "user", "content": LINES[4]}], user_id="u", session_id="s",
                  timestamp=T0 + timedelta(hours=5))
    eps = m.search("puppy match", user_id="u", limit=50, levels=["episode"])
    assert not any(set(first) & set(h.source_ids) and set(later) & set(h.source_ids) for h in eps)
    m.close()


def test_turn_segmenter_stores_one_closed_episode_per_turn(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "t", embedder={"backend": "hashing"}, vector={"backend": "memory"},
                        segmenter={"backend": "turn"})
    m = Memory(settings)
    ids = m.add([{"role": "user", "content": c} for c in LINES[:5]], user_id="u", session_id="s", timestamp=T0)
    eps = m.search("puppy match bread", user_id="u", limit=50, levels=["episode"])
    assert sorted(tuple(h.source_ids) for h in eps) == sorted((i,) for i in ids)
    m.close()


def test_add_embeds_each_turn_once_and_the_segmenter_reuses_those_vectors(tmp_path: Path) -> None:
    import numpy as np

    from memsvc.embedders.fake import HashingEmbedder
    from memsvc.segmenters import BoundarySegmenter

    class Counting(HashingEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            self.seen = [*getattr(self, "seen", []), *texts]
            return super().embed(texts)

    class Recording(BoundarySegmenter):
        def split(self, items, final=False):  # type: ignore[no-untyped-def]
            self.fed = [*getattr(self, "fed", []), *items]
            return super().split(items, final)

    emb, seg = Counting(), Recording()
    settings = Settings(data_dir=tmp_path / "e", embedder={"backend": "hashing"}, vector={"backend": "memory"})
    m = Memory(settings, embedder=emb, segmenter=seg)
    for i, line in enumerate(LINES):
        m.add([{"role": "user", "content": line, "name": "Ann"}], user_id="u", session_id="s",
              timestamp=T0 + timedelta(seconds=10 * i))
    # one embedding per turn: the open episode's turns are re-fed to the segmenter with their stored vectors
    stored = [unit_text("user", "Ann", line, T0 + timedelta(seconds=10 * i))[0] for i, line in enumerate(LINES)]
    assert emb.seen == stored and stored[1] == f"Ann: {LINES[1]}"
    assert len(seg.fed) > len(LINES)
    ref = {line: v for line, v in zip(LINES, HashingEmbedder().embed(stored), strict=True)}
    for it in seg.fed:
        assert np.allclose(it.embedding, ref[it.text])
    m.close()


def _episodes(m: Memory, user: str) -> list[tuple[str | None, list[str]]]:
    hits = m.search("puppy bread match league beagle", user_id=user, limit=200, levels=["episode"])
    return sorted((h.session_id, sorted(h.source_ids)) for h in hits)


def test_open_episodes_evicted_from_memory_reload_from_the_stores(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The open-episode cache is bounded: with room for one session, interleaving three sessions evicts
    and reloads them at every turn, and the episodes come out as with an unbounded cache."""
    import memsvc.pipeline as pipeline

    def run(path: Path) -> tuple[list[tuple[str | None, list[str]]], int]:
        m = _memory(path)
        ids_in_order: list[str] = []
        t = T0
        for line in LINES:
            for session in ("s1", "s2", "s3"):
                ids_in_order += m.add([{"role": "user", "content": f"{line} ({session})"}], user_id="ann",
                                      session_id=session, timestamp=t)
            t += timedelta(seconds=20)
        kept = len(m.service.ingestor._open)
        # the same events whatever the cache: compare episodes by the position of their members
        pos = {eid: i for i, eid in enumerate(ids_in_order)}
        eps = [(s, sorted(str(pos[i]) for i in src)) for s, src in _episodes(m, "ann")]
        m.close()
        return sorted(eps), kept

    unbounded, kept_all = run(tmp_path / "a")
    monkeypatch.setattr(pipeline, "OPEN_CACHE", 1)
    bounded, kept_one = run(tmp_path / "b")
    assert kept_all == 3 and kept_one == 1
    assert bounded == unbounded and len(unbounded) >= 3
