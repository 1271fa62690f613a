"""``memsvc bench segmentation``: metrics, the predictions file, online == offline on a tiny file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memsvc.benchmarks.segdata import boundary_f1, pk_wd, score
from memsvc.benchmarks.segmentation import run
from memsvc.embedders import HashingEmbedder

DIALOGUES = [
    {"utterances": ["I adopted a puppy.", "What breed?", "A beagle.", "Did you watch the match?", "Yes, we won.",
                    "Great game.", "I bake bread.", "Sourdough?", "Yes."],
     "segmentation_label": [0, 0, 1, 0, 0, 1, 0, 0, 0]},
    {"utterances": ["Hi, how are you?", "Fine, thanks.", "Do you like jazz?", "I love jazz.", "Me too."],
     "segmentation_label": [0, 1, 0, 0, 0], "roles": ["user", "agent", "user", "agent", None]},
]


def test_metrics_by_hand() -> None:
    ref = [0, 0, 1, 0, 0, 1, 0, 0, 0]
    assert pk_wd(ref, ref, 2) == (0.0, 0.0)
    assert boundary_f1(ref, ref) == 1.0
    assert boundary_f1([0, 0, 0], [0, 0, 0]) == 1.0
    assert boundary_f1(ref, [0] * 9) == 0.0
    hyp = [0, 1, 0, 0, 0, 1, 0, 0, 0]
    assert boundary_f1(ref, hyp) == 0.5
    pk, wd = pk_wd(ref, hyp, 2)  # windows of 2 labels: positions 0..6
    assert pk == pytest.approx(2 / 7) and wd == pytest.approx(2 / 7)
    s = score([ref], [hyp])
    assert s["score"] == pytest.approx((2 * 0.5 + (1 - 2 / 7) * 2) / 4, abs=1e-4)
    assert s["segments_per_dialogue"] == {"gold": 3.0, "predicted": 3.0}
    # the last label is ignored on both sides
    assert score([[0, 1, 1]], [[0, 1, 0]])["f1"] == 1.0


@pytest.mark.parametrize("segmenter", ["boundary", "tiling", "similarity"])
def test_run_writes_rescorable_predictions(tmp_path: Path, segmenter: str) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DIALOGUES))
    pred = tmp_path / "p.jsonl"
    result, details = run(data, segmenter, embedder=HashingEmbedder(), predictions=pred)
    assert set(result) == {"pk", "windowdiff", "f1", "score", "n_dialogues", "segments_per_dialogue"}
    assert result["n_dialogues"] == 2 and set(result["segments_per_dialogue"]) == {"gold", "predicted"}
    preds = [json.loads(line)["segmentation_label"] for line in pred.read_text().splitlines()]
    assert [len(p) for p in preds] == [9, 5]
    again = score([d["segmentation_label"] for d in DIALOGUES], preds)
    assert again == result
    if segmenter != "similarity":
        online, _ = run(data, segmenter, embedder=HashingEmbedder(), online=True)
        assert online == result
    assert details["utterances"] == 14
    assert details["utterances_per_cpu_s"] > 0 and len(details["load_average"]) == 2


def test_as_ingested_embeds_what_memory_add_embeds(tmp_path: Path) -> None:
    from memsvc.benchmarks.segdata import as_ingested, embed_dialogues, load_dialogues
    from memsvc.pipeline import turn_text

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DIALOGUES))
    dials = as_ingested(load_dialogues(data))
    assert dials[0].speakers[:3] == ["user", "assistant", "user"]  # no roles: alternating
    assert dials[1].speakers == ["user", "agent", "user", "agent", "user"]  # roles kept, a gap filled
    emb = HashingEmbedder()
    got = embed_dialogues(dials, emb, prefixed=True)
    want = emb.embed([turn_text(s, None, u) for s, u in zip(dials[1].speakers, dials[1].utterances, strict=True)])
    assert got[1] == pytest.approx(want)
    assert got[1][0] != pytest.approx(embed_dialogues(dials, emb)[1][0])
    result, details = run(data, "boundary", embedder=emb, ingested=True, online=True)
    assert details["ingested"] and result == run(data, "boundary", embedder=emb, ingested=True)[0]


@pytest.mark.parametrize("trained_as_ingested", [True, False])
def test_default_view_follows_the_model(tmp_path: Path, trained_as_ingested: bool) -> None:
    import dataclasses

    from memsvc.segmenters import BoundaryModel
    from memsvc.segmenters.boundary import default_model_path

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DIALOGUES))
    base = BoundaryModel.load(default_model_path())
    model = dataclasses.replace(base, meta={**base.meta, "as_ingested": trained_as_ingested})
    _, details = run(data, "boundary", {"model": model}, embedder=HashingEmbedder())
    assert details["ingested"] is trained_as_ingested
    _, forced = run(data, "boundary", {"model": model}, embedder=HashingEmbedder(), ingested=False)
    assert forced["ingested"] is False
    _, tiling = run(data, "tiling", embedder=HashingEmbedder())
    assert tiling["ingested"] is False


def test_bench_embeds_with_the_product_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an embedder given, the bench times what Memory.add uses: Settings().embedder."""
    from memsvc.benchmarks.segmentation import _embedder_options, product_embedder
    from memsvc.embedders import SentenceTransformerEmbedder

    monkeypatch.delenv("MEMSVC_EMBEDDER__BACKEND", raising=False)
    monkeypatch.delenv("MEMSVC_EMBEDDER__OPTIONS", raising=False)
    emb = product_embedder()  # lazy: nothing is loaded until embed()
    assert isinstance(emb, SentenceTransformerEmbedder) and emb.runtime == "auto"
    assert _embedder_options(emb)["runtime"] == "auto"
    monkeypatch.setenv("MEMSVC_EMBEDDER__OPTIONS", '{"threads": 1}')
    assert product_embedder().threads == 1  # type: ignore[attr-defined]
    monkeypatch.setenv("MEMSVC_EMBEDDER__BACKEND", "hashing")
    monkeypatch.setenv("MEMSVC_EMBEDDER__OPTIONS", "{}")
    assert isinstance(product_embedder(), HashingEmbedder)
