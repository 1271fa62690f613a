"""Second-stage rankers: MMR over stored vectors and a real (tiny, random) sentence-transformers
cross-encoder built from a config in a temp dir."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from memsvc import Memory, Settings
from memsvc._types import Level
from memsvc.exceptions import ConfigError
from memsvc.models import Hit
from memsvc.retrieval.rerank import RERANKERS, CrossEncoderReranker, MMRReranker, RerankContext, rerank_top
from memsvc.tokens import count_tokens
from tests.model_fixtures import tiny_bert

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def hit(i: str, score: float, text: str = "x") -> Hit:
    return Hit(id=i, text=text, score=score, level=Level.TURN, start_time=T0, end_time=T0, source_ids=[i], user_id="u1",
               components={"dense": score})


def ctx_for(vecs: dict[str, list[float]]) -> RerankContext:
    arr = {k: np.asarray(v, dtype=np.float32) for k, v in vecs.items()}
    return RerankContext(vectors=lambda ids: {i: arr[i] for i in ids if i in arr},
                         embed=lambda texts: np.zeros((len(texts), 2), dtype=np.float32))


def test_mmr_moves_a_near_duplicate_below_a_different_relevant_hit() -> None:
    hits = [hit("a", 1.0), hit("a2", 0.95), hit("b", 0.9), hit("c", 0.1)]
    ctx = ctx_for({"a": [1, 0], "a2": [0.99, 0.05], "b": [0, 1], "c": [0.7, 0.7]})
    out = MMRReranker(**{"lambda": 0.5}).rerank("q", hits, ctx)
    assert [h.id for h in out][:2] == ["a", "b"]
    assert sorted(h.id for h in out) == ["a", "a2", "b", "c"]
    assert out[0].components["rerank"] > out[1].components["rerank"] > out[-1].components["rerank"]
    # lambda 1: pure relevance, the fused order
    same = MMRReranker(**{"lambda": 1.0}).rerank("q", [hit("a", 1.0), hit("a2", 0.95), hit("b", 0.9)], ctx)
    assert [h.id for h in same] == ["a", "a2", "b"]


def test_rerank_top_reorders_only_the_head_and_rejects_bad_options() -> None:
    hits = [hit("a", 1.0), hit("a2", 0.95), hit("b", 0.9), hit("z", 0.05)]
    ctx = ctx_for({"a": [1, 0], "a2": [1, 0], "b": [0, 1], "z": [1, 0]})
    out = rerank_top(MMRReranker(**{"lambda": 0.3}), "q", hits, 3, ctx)
    assert [h.id for h in out] == ["a", "b", "a2", "z"]
    assert "rerank" not in out[-1].components
    with pytest.raises(ConfigError):
        RERANKERS.create("mmr", **{"lambda": 2.0})
    with pytest.raises(ConfigError):
        RERANKERS.create("mmr", beta=1)
    with pytest.raises(ConfigError):
        RERANKERS.create("cross-encoder")
    with pytest.raises(ConfigError):
        RERANKERS.create("nope")


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with one regression label and MiniLM's real WordPiece tokenizer, random weights."""
    return tiny_bert(tmp_path_factory.mktemp("tiny-ce"), num_labels=1)


def test_cross_encoder_orders_by_its_own_scores(tiny_cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    texts = ["the cat sat on the mat", "stock prices fell sharply", "we adopted a kitten", "rain tomorrow"]
    hits = [hit(str(i), 1.0 - i / 10, t) for i, t in enumerate(texts)]
    rr = CrossEncoderReranker(model=str(tiny_cross_encoder), device="cpu")
    ref = CrossEncoder(str(tiny_cross_encoder), device="cpu", local_files_only=True)
    want = np.asarray(ref.predict([("a pet", t) for t in texts], show_progress_bar=False)).reshape(-1)
    out = rr.rerank("a pet", hits, ctx_for({}))
    assert [h.text for h in out] == [texts[i] for i in np.argsort(-want, kind="stable")]
    for h in out:
        assert h.components["rerank"] == pytest.approx(float(want[texts.index(h.text)]), abs=1e-5)
    # mix 0: the fused order comes back
    back = CrossEncoderReranker(model=str(tiny_cross_encoder), device="cpu", mix=0.0).rerank(
        "a pet", [hit(str(i), 1.0 - i / 10, t) for i, t in enumerate(texts)], ctx_for({}))
    assert [h.text for h in back] == texts


def test_search_with_a_reranker_keeps_the_budget_and_the_user_scope(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, embedder={"backend": "hashing"},
                        retrieval={"reranker": {"backend": "cross-encoder",
                                                "options": {"model": str(tiny_cross_encoder), "device": "cpu"}},
                                   "rerank_top": 5})
    m = Memory(settings)
    try:
        msgs = [{"role": "user", "content": f"note {i}: I planted {i} tomatoes in the garden"} for i in range(12)]
        m.add(messages=msgs, user_id="u1", session_id="s1", timestamp=T0)
        m.add(messages=[{"role": "user", "content": "tomatoes in the garden are secret"}], user_id="u2",
              session_id="s9", timestamp=T0)
        hits = m.search("tomatoes garden", user_id="u1", limit=8)
        assert hits and all(h.user_id == "u1" for h in hits)
        assert sum("rerank" in h.components for h in hits) == min(5, len(hits))
        ctx = m.context("tomatoes garden", user_id="u1", budget_tokens=60)
        assert 0 < count_tokens(ctx) <= 60
    finally:
        m.close()


def test_a_missing_cross_encoder_model_is_a_config_error_at_first_use(tmp_path: Path) -> None:
    rr = CrossEncoderReranker(model=str(tmp_path / "absent"))
    with pytest.raises(ConfigError):
        rr.rerank("q", [hit("a", 1.0)], ctx_for({}))


def test_contiguity_brings_session_neighbours_of_the_best_hit_right_behind_it(tmp_path: Path) -> None:
    """EM-LLM contiguity: the turns around the best hit follow it in the ranking (same session only)."""
    base = {"data_dir": tmp_path, "embedder": {"backend": "hashing"}, "segmenter": {"backend": "similarity"}}
    msgs = [{"role": "user", "content": t} for t in (
        "the weather was grey all week", "we talked about the budget", "my sister Ines moved to Lisbon",
        "she found a flat near the river", "then the quarterly numbers came in", "lunch was pasta")]
    on = Memory(Settings(**base, retrieval={"contiguity": 1, "contiguity_top": 1}))
    try:
        ids = on.add(messages=msgs, user_id="u1", session_id="s1", timestamp=T0)
        on.add(messages=[{"role": "user", "content": "an unrelated other session"}], user_id="u1",
               session_id="s2", timestamp=T0)
        hits = on.search("Ines moved to Lisbon", user_id="u1", limit=6, levels=["turn"])
        assert hits[0].source_ids == [ids[2]]
        nxt = {h.source_ids[0] for h in hits[1:3]}
        assert nxt == {ids[1], ids[3]}
        assert all("contiguity" in h.components for h in hits[1:3])
        assert hits[1].components["contiguity"] == pytest.approx(hits[0].score * 0.9, abs=1e-5)
    finally:
        on.close()
    off = Memory(Settings(**{**base, "data_dir": tmp_path / "off"}))
    try:
        ids = off.add(messages=msgs, user_id="u1", session_id="s1", timestamp=T0)
        hits = off.search("Ines moved to Lisbon", user_id="u1", limit=6, levels=["turn"])
        assert hits[0].source_ids == [ids[2]] and not any("contiguity" in h.components for h in hits)
    finally:
        off.close()
