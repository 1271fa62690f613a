"""Compression as denoising in the write path (SeCom): the real selfinfo compressor, the real MiniLM
model, qdrant-edge and SQLite. The unit's vector is the embedding of its compressed text, search
returns the original or the compressed text by config, protected tokens survive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from memsvc import Memory, Settings
from memsvc.compressors import Denoiser, SelfInfoCompressor
from memsvc.compressors.prompt import protected_tokens
from memsvc.exceptions import CompressionError
from memsvc.stores import Scope
from memsvc.tokens import count_tokens

T0 = datetime(2023, 5, 8, 13, 0, tzinfo=UTC)
TURNS = [
    ("Caroline", "Um, you know, I basically went to the LGBTQ support group yesterday and it was so so powerful."),
    ("Melanie", "Wow, that's really really cool! I actually painted a lake sunrise on 8 May 2022 for my kids."),
    ("Caroline", "I mean, honestly, I kind of think that the adoption agency in Boston called me last Friday."),
    ("Melanie", "Basically I ran a charity race for $250 and to be honest it was literally the best day."),
]


def _settings(path: Path, **compressor: Any) -> Settings:
    return Settings(data_dir=path, compressor={"denoise": True, **compressor})


def _add(m: Memory) -> list[str]:
    msgs = [{"role": "user", "content": t, "name": s, "timestamp": T0 + timedelta(minutes=i)}
            for i, (s, t) in enumerate(TURNS)]
    return m.add(msgs, user_id="u1", session_id="s1")


def _unit(m: Memory, uid: str) -> Any:
    return m.service.sql.units(Scope("default", "u1"), [uid])[uid]


def test_turn_vector_is_the_embedding_of_its_compressed_text(tmp_path: Path, minilm: Any) -> None:
    with Memory(_settings(tmp_path, denoise_mix=1.0), embedder=minilm) as m:
        ids = _add(m)
        svc = m.service
        vecs = svc.vectors.fetch(ids)
        for uid, (speaker, text) in zip(ids, TURNS, strict=True):
            u = _unit(m, uid)
            compressed = u.meta["compressed_text"]
            assert u.text.startswith(f"{speaker}: {text[:25]}")  # the original stays the unit text
            assert count_tokens(compressed) < count_tokens(u.text) and u.meta["compressed_tokens"] == count_tokens(compressed)
            assert (u.compressor, u.compressor_version) == ("selfinfo", "1")
            assert m.get(uid, user_id="u1").producer["compressor"] == "selfinfo"
            for tok in protected_tokens(u.text):  # names, numbers, dates
                assert tok in compressed, tok
            want = minilm.embed([compressed])[0]
            orig = minilm.embed([u.text])[0]
            np.testing.assert_allclose(vecs[uid], want / np.linalg.norm(want), atol=1e-5)
            assert not np.allclose(vecs[uid], orig / np.linalg.norm(orig), atol=1e-3)
        # episodes: compressed text = their turns' compressed texts; vector = centroid of the member vectors
        scope = Scope("default", "u1")
        of = svc.sql.episodes_of(scope, ids)
        assert set(of) == set(ids)
        for ep in set(of.values()):
            members = svc.sql.sources([ep], scope)[ep]
            eu = _unit(m, ep)
            assert eu.meta["compressed_text"] == "\n".join(_unit(m, i).meta["compressed_text"] for i in members)
            assert eu.compressor == "selfinfo"
            centroid = np.mean(np.stack([vecs[i] for i in members]), axis=0)
            np.testing.assert_allclose(svc.vectors.fetch([ep])[ep], centroid / np.linalg.norm(centroid), atol=1e-5)


@pytest.mark.parametrize("returns", ["original", "compressed"])
def test_search_returns_the_configured_text(tmp_path: Path, minilm: Any, returns: str) -> None:
    with Memory(_settings(tmp_path, returns=returns), embedder=minilm) as m:
        ids = _add(m)
        hits = m.search("What did Melanie paint for her kids?", user_id="u1", limit=10)
        assert hits and ids[1] in {h.id for h in hits}
        for h in hits:
            u = _unit(m, h.id)
            assert h.text == (u.meta["compressed_text"] if returns == "compressed" else u.text)
            assert "compressed_text" not in h.metadata
        packed = m.search("What did Melanie paint for her kids?", user_id="u1", budget_tokens=200)
        ctx = m.context("What did Melanie paint for her kids?", user_id="u1", budget_tokens=200)
        assert all(h.text in ctx for h in packed) and count_tokens(ctx) <= 200
        for tok in ("Melanie", "8", "May", "2022", "$250"):  # Melanie's turn is in the context ...
            assert tok in ctx
        assert ("really really" in ctx) == (returns == "original")  # ... compressed or not


def test_lexical_index_holds_the_configured_text(tmp_path: Path, minilm: Any) -> None:
    for lexical, found in (("original", True), ("compressed", False)):
        with Memory(_settings(tmp_path / lexical, lexical=lexical), embedder=minilm) as m:
            ids = _add(m)
            svc = m.service
            got = svc.lexical.search(Scope("default", "u1"), ["basically"], 10, None, field="text")[0]
            assert (ids[0] in {i for i, _ in got}) is found
            got = svc.lexical.search(Scope("default", "u1"), ["LGBTQ"], 10, None, field="text")[0]
            assert ids[0] in {i for i, _ in got}


def test_denoise_off_stores_no_compressed_text(tmp_path: Path, minilm: Any) -> None:
    with Memory(Settings(data_dir=tmp_path), embedder=minilm) as m:
        ids = _add(m)
        u = _unit(m, ids[0])
        assert "compressed_text" not in u.meta and u.compressor is None
        v = m.service.vectors.fetch([ids[0]])[ids[0]]
        want = minilm.embed([u.text])[0]
        np.testing.assert_allclose(v, want / np.linalg.norm(want), atol=1e-5)


def test_reindex_compresses_units_stored_before_denoising(tmp_path: Path, minilm: Any) -> None:
    with Memory(Settings(data_dir=tmp_path), embedder=minilm) as m:
        ids = _add(m)
    with Memory(_settings(tmp_path, returns="compressed", denoise_mix=1.0), embedder=minilm, reindex=True) as m:
        u = _unit(m, ids[2])
        assert u.compressor == "selfinfo" and "Boston" in u.meta["compressed_text"]
        v = m.service.vectors.fetch([ids[2]])[ids[2]]
        want = minilm.embed([u.meta["compressed_text"]])[0]
        np.testing.assert_allclose(v, want / np.linalg.norm(want), atol=1e-5)
        hits = m.search("adoption agency in Boston", user_id="u1", limit=3)
        assert hits[0].text in {_unit(m, h.id).meta["compressed_text"] for h in hits}
        # a deleted turn: its episode is rebuilt and its compressed text follows
        scope = Scope("default", "u1")
        ep = m.service.sql.episodes_of(scope, [ids[0]])[ids[0]]
        m.delete(ids[0], user_id="u1")
        eu = _unit(m, ep)
        assert "LGBTQ" not in eu.meta["compressed_text"]
        assert eu.meta["compressed_text"] == "\n".join(
            _unit(m, i).meta["compressed_text"] for i in m.service.sql.sources([ep], scope)[ep])


def test_config_and_compressor_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, compressor={"returns": "shorter"})
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, compressor={"denoise": True, "rate": 0.0})

    class Broken(SelfInfoCompressor):
        def score(self, words: Any) -> list[float]:
            raise RuntimeError("boom")

    d = Denoiser(Broken(), rate=0.5)
    with pytest.raises(CompressionError):
        d.texts(["Caroline: I really went to the big support group in the city yesterday."])
    d = Denoiser(SelfInfoCompressor(), rate=0.5, cache_lines=1)
    lines = ["Caroline: I really went to the group.", "Melanie: That is really very nice of you."]
    out = d.texts(["\n".join(lines), lines[0]])  # more new lines than the memo holds: still all compressed
    assert out[0].split("\n")[1] == d.text(lines[1]) and out[1] == d.text(lines[0]) != lines[0]


def test_compressed_text_returned_without_denoising(tmp_path: Path, minilm: Any) -> None:
    """``returns="compressed"`` alone: turns keep the embedding of their original text."""
    with Memory(Settings(data_dir=tmp_path, compressor={"returns": "compressed"}), embedder=minilm) as m:
        ids = _add(m)
        u = _unit(m, ids[3])
        assert u.compressor == "selfinfo" and "$250" in u.meta["compressed_text"]
        v = m.service.vectors.fetch([ids[3]])[ids[3]]
        want = minilm.embed([u.text])[0]
        np.testing.assert_allclose(v, want / np.linalg.norm(want), atol=1e-5)
        hits = m.search("How much was the charity race for?", user_id="u1", limit=5)
        assert hits[0].id == ids[3] and hits[0].text == u.meta["compressed_text"]


def test_denoise_mix_blends_the_compressed_and_original_embeddings(tmp_path: Path, minilm: Any) -> None:
    def expected(u: Any, mix: float) -> np.ndarray:
        vc, vo = minilm.embed([u.meta["compressed_text"]])[0], minilm.embed([u.text])[0]
        v = mix * vc + (1 - mix) * vo
        return v / np.linalg.norm(v)

    with Memory(_settings(tmp_path / "a", denoise_mix=0.5), embedder=minilm) as m:
        ids = _add(m)
        vecs = m.service.vectors.fetch(ids)
        for uid in ids:
            np.testing.assert_allclose(vecs[uid], expected(_unit(m, uid), 0.5), atol=1e-5)
    # a reindex under another mix re-blends from SQL text (the truth)
    with Memory(_settings(tmp_path / "a", denoise_mix=0.25), embedder=minilm, reindex=True) as m:
        v = m.service.vectors.fetch([ids[1]])[ids[1]]
        np.testing.assert_allclose(v, expected(_unit(m, ids[1]), 0.25), atol=1e-5)
    with pytest.raises(ValidationError):
        _settings(tmp_path / "b", denoise_mix=1.5)
