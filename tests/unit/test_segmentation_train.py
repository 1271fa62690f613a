"""The boundary model's training command: file parts for held-out checks, threshold calibration, --eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from memsvc.benchmarks import segmentation_train as st
from memsvc.benchmarks.segdata import as_ingested, embed_dialogues, load_dialogues
from memsvc.embedders import HashingEmbedder
from memsvc.segmenters import BoundaryModel, BoundarySegmenter
from tests.unit.test_segmenters import TOPICS as SEGMENTER_TOPICS

TOPICS = [
    *SEGMENTER_TOPICS,
    ["We are moving to Lisbon in May.", "Have you found a flat yet?", "Not yet, we visit three next week.",
     "Lisbon rents went up a lot."],
]


def write_file(path: Path, n: int = 8) -> Path:
    rows = []
    for k in range(n):
        order = [TOPICS[(k + i) % len(TOPICS)] for i in range(3)]
        utts = [u for t in order for u in t]
        labels = [0, 0, 0, 1] * 3
        labels[-1] = 0
        rows.append({"utterances": utts, "segmentation_label": labels, "id": k})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def corpus(path: Path, spec: str = "") -> st.Corpus:
    dials = as_ingested(load_dialogues(path))
    embs = embed_dialogues(dials, HashingEmbedder(), prefixed=True)
    part = spec or ""
    keep = [i for i in range(len(dials)) if not part or st._pick(part, i)]
    return st.Corpus(path.stem, [dials[i] for i in keep], [embs[i] for i in keep])


@pytest.mark.parametrize(("part", "want"), [
    ("even", [0, 2, 4, 6]), ("odd", [1, 3, 5, 7]), ("1/4", [1, 5]), ("^1/4", [0, 2, 3, 4, 6, 7]), ("0/2", [0, 2, 4, 6]),
])
def test_parts_split_a_file_without_overlap(part: str, want: list[int]) -> None:
    assert [i for i in range(8) if st._pick(part, i)] == want


@pytest.mark.parametrize("bad", ["third", "4/4", "1/", "x/3"])
def test_bad_parts_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        st._part(f"f.jsonl@{bad}")


def test_load_corpora_parts_are_complementary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_file(tmp_path / "d.jsonl")
    monkeypatch.setattr("memsvc.benchmarks.segmentation.product_embedder", HashingEmbedder)
    a, b, whole = st.load_corpora([f"{data}@^0/3", f"{data}@0/3", str(data)], None, ingested=True)
    assert (a.name, b.name) == ("d@^0/3", "d@0/3")
    assert len(a.dialogues) + len(b.dialogues) == len(whole.dialogues) == 8
    np.testing.assert_array_equal(b.embeddings[1], whole.embeddings[3])
    assert b.dialogues[1].utterances == whole.dialogues[3].utterances


@pytest.mark.parametrize("calibrate", ["score", "segments"])
def test_calibration_picks_a_grid_threshold(tmp_path: Path, calibrate: str) -> None:
    c = corpus(write_file(tmp_path / "d.jsonl"))
    model = st.train([c], hidden=0, calibrate=calibrate)
    assert model.meta["calibrate"] == calibrate and model.meta["threshold"] in st.GRID
    thr, table = st.tune_threshold(model, [c], st.GRID, calibrate=calibrate)
    assert thr == model.meta["threshold"] and set(table) == set(st.GRID)
    if calibrate == "segments":
        # the chosen threshold's segment count is the closest to gold on the grid
        seg = BoundarySegmenter(model=model)
        gold = np.mean([sum(d.labels[:-1]) + 1 for d in c.dialogues])

        def misfit(t: float) -> float:
            seg.threshold = t
            got = np.mean([sum(x[:-1]) + 1 for x in st.predict_labels(seg, c)])
            return abs(np.log(got / gold))

        assert misfit(thr) <= min(misfit(t) for t in st.GRID) + 1e-3
    with pytest.raises(ValueError):
        st.tune_threshold(model, [c], st.GRID, calibrate="count")


def test_main_trains_and_scores_held_out_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = write_file(tmp_path / "d.jsonl")
    monkeypatch.setattr("memsvc.benchmarks.segmentation.product_embedder", HashingEmbedder)
    out = tmp_path / "m.npz"
    assert st.main(["--as-ingested", "--data", f"{data}@even", "--eval", f"{data}@odd", "--out", str(out),
                    "--cache-dir", str(tmp_path / "cache"), "--calibrate", "segments", "--grid-step", "0.05"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trained_on"] == ["d@even"] and report["as_ingested"] is True
    assert set(report["eval"]) == {"d@odd", "d@odd tiling"}
    assert report["eval"]["d@odd"]["n_dialogues"] == 4
    model = BoundaryModel.load(out)
    assert model.meta["threshold"] == report["threshold"]
    with pytest.raises(SystemExit):
        st.main(["--data", str(data)])  # neither --out nor --eval
