"""The ``memsvc`` command line through Typer's CliRunner, on tiny fixtures with the hashing embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memsvc import Memory, Settings
from memsvc.cli import app
from tests.bench_fixtures import write_locomo, write_longmemeval

runner = CliRunner()
HASHING = {"backend": "hashing"}


@pytest.fixture(autouse=True)
def hashing_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSVC_EMBEDDER__BACKEND", "hashing")


def invoke(*args: str) -> object:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_help_lists_commands() -> None:
    out = invoke("--help").stdout
    for cmd in ("demo", "migrate", "import", "bench"):
        assert cmd in out
    bench = invoke("bench", "--help").stdout
    for cmd in ("locomo", "longmemeval", "latency"):
        assert cmd in bench


def test_demo_runs_on_a_temporary_store() -> None:
    out = invoke("demo").stdout
    assert "session mar02: 10 turns stored" in out
    assert "stream home-cam: 24 frames" in out
    assert out.count(" hits in ") == 5
    assert "video home-cam" in out and "chat mar16" in out
    assert "cl100k tokens" in out and "[" in out
    assert "the temporary store is removed" in out


def test_demo_keeps_store_when_asked(tmp_path: Path) -> None:
    invoke("demo", "--data-dir", str(tmp_path / "kept"), "--limit", "2", "--budget", "120")
    with Memory(Settings(embedder=HASHING), path=tmp_path / "kept") as m:
        stats = m.stats("maya")
    assert stats["events"] == 30 + 24


def test_import_locomo(tmp_path: Path) -> None:
    data = write_locomo(tmp_path)
    out = invoke("import", "locomo", str(data), "--user", "ann", "--data-dir", str(tmp_path / "d")).stdout
    assert "11 turns for user 'ann'" in out
    with Memory(Settings(embedder=HASHING), path=tmp_path / "d") as m:
        hist = m.history("ann", limit=100)
        hits = m.search("golden retriever photo", user_id="ann", limit=1)
    assert len(hist) == 11
    assert {h.session_id for h in hist} == {"conv-a-s1", "conv-a-s2", "conv-b-s1", "conv-b-s2"}
    rex = next(h for h in hist if h.text and h.text.startswith("He is a golden"))
    assert rex.name == "Ann" and rex.text.endswith("[shares a photo: a golden puppy on a rug]")
    assert rex.start_time.isoformat() == "2023-05-08T13:56:00+00:00"
    assert "golden retriever" in hits[0].text


def test_import_one_conversation_and_unknown(tmp_path: Path) -> None:
    data = write_locomo(tmp_path)
    out = invoke(
        "import", "locomo", str(data), "-u", "x", "--data-dir", str(tmp_path / "d"), "-c", "conv-b"
    ).stdout
    assert "4 turns" in out
    bad = runner.invoke(
        app, ["import", "locomo", str(data), "-u", "x", "--data-dir", str(tmp_path / "d"), "-c", "nope"]
    )
    assert bad.exit_code == 2


def test_import_longmemeval(tmp_path: Path) -> None:
    data = write_longmemeval(tmp_path)
    out = invoke(
        "import",
        "longmemeval",
        str(data),
        "--user",
        "u",
        "--data-dir",
        str(tmp_path / "d"),
        "--question",
        "q3",
    ).stdout
    assert "6 turns for user 'u'" in out
    with Memory(Settings(embedder=HASHING), path=tmp_path / "d") as m:
        hist = m.history("u")
    assert {h.session_id for h in hist} == {"q3-s0", "q3-s1", "q3-s2"}


def _result_file(results: Path, bench: str) -> dict:
    files = list(results.glob(f"{bench}-*.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    assert {"result", "commit", "machine", "settings", "config", "date"} <= set(doc)
    assert doc["settings"]["embedder"]["backend"] == "hashing"
    assert doc["machine"]["cpu_count"] >= 1
    return doc


def test_bench_locomo_keys_and_result_file(tmp_path: Path) -> None:
    data = write_locomo(tmp_path)
    res = invoke(
        "bench",
        "locomo",
        "--data",
        str(data),
        "--budgets",
        "60,100000",
        "--results-dir",
        str(tmp_path / "res"),
    )
    out = json.loads(res.stdout)
    assert {"recall", "per_category", "tokens_mean", "add_ms", "search_ms"} <= set(out)
    assert set(out["recall"]) == {"60", "100000"}
    assert set(out["per_category"]) == {"1", "2", "3", "4"}
    assert set(out["add_ms"]) == set(out["search_ms"]) == {"p50", "p95"}
    assert out["questions"] == 7 and out["conversations"] == 2 and out["turns"] == 11
    # a budget that holds everything recalls every evidence turn
    assert out["recall"]["100000"] == 100.0
    assert out["tokens_mean"]["60"] <= 60 and out["over_budget"] == 0
    doc = _result_file(tmp_path / "res", "locomo")
    assert doc["result"] == out and doc["config"]["budgets"] == [60, 100000]


def test_bench_locomo_segmenter_option_reaches_settings(tmp_path: Path) -> None:
    data = write_locomo(tmp_path)
    res = invoke("bench", "locomo", "--data", str(data), "--budgets", "100000", "--segmenter", "turn",
                 "--results-dir", str(tmp_path / "res"))
    assert json.loads(res.stdout)["recall"]["100000"] == 100.0
    doc = _result_file(tmp_path / "res", "locomo")
    assert doc["settings"]["segmenter"]["backend"] == "turn"
    bad = runner.invoke(app, ["bench", "locomo", "--data", str(data), "--segmenter", "nope",
                              "--results-dir", str(tmp_path / "res2")])
    assert bad.exit_code != 0


def test_bench_locomo_limit_and_bad_budgets(tmp_path: Path) -> None:
    data = write_locomo(tmp_path)
    res = invoke(
        "bench",
        "locomo",
        "--data",
        str(data),
        "--budgets",
        "200",
        "--limit",
        "1",
        "--results-dir",
        str(tmp_path / "res"),
    )
    assert json.loads(res.stdout)["questions"] == 4
    for bad in ("abc", "0,100", ""):
        r = runner.invoke(app, ["bench", "locomo", "--data", str(data), "--budgets", bad])
        assert r.exit_code == 2


def test_bench_longmemeval(tmp_path: Path) -> None:
    data = write_longmemeval(tmp_path)
    res = invoke(
        "bench",
        "longmemeval",
        "--data",
        str(data),
        "--budgets",
        "30,100000",
        "--results-dir",
        str(tmp_path / "res"),
    )
    out = json.loads(res.stdout)
    assert out["questions"] == 2 and out["skipped_abstention"] == 1
    assert out["recall"]["100000"] == 100.0 and out["recall_all_sessions"]["100000"] == 100.0
    assert out["tokens_mean"]["30"] <= 30
    _result_file(tmp_path / "res", "longmemeval")
    res = invoke(
        "bench",
        "longmemeval",
        "--data",
        str(data),
        "--step",
        "2",
        "--limit",
        "1",
        "--results-dir",
        str(tmp_path / "res2"),
    )
    assert json.loads(res.stdout)["questions"] == 1
    # --embed-cache: the same figures, the vectors kept in a file for the next run
    cache = tmp_path / "emb.npz"
    runs = []
    for _ in range(2):
        r = invoke("bench", "longmemeval", "--data", str(data), "--budgets", "30,100000", "--embed-cache",
                   str(cache), "--results-dir", str(tmp_path / "res3"))
        runs.append(json.loads(r.stdout))
    assert cache.is_file()
    assert runs[0]["recall"] == runs[1]["recall"] == out["recall"]


def test_bench_latency_tiny(tmp_path: Path) -> None:
    res = invoke(
        "bench",
        "latency",
        "--n",
        "300",
        "--users",
        "3",
        "--batch",
        "100",
        "--samples",
        "5",
        "--results-dir",
        str(tmp_path / "res"),
    )
    out = json.loads(res.stdout)
    assert out["n"] == 300 and out["stats"]["events"] == 300
    for k in ("add_ms", "search_ms", "search_budget1000_ms"):
        assert out[k]["p95"] >= out[k]["p50"] > 0
    _result_file(tmp_path / "res", "latency")
    assert out["index"]["vector_bytes"]["float32_bytes"] == out["index"]["vector_bytes"]["points"] * 384 * 4
    assert 0.0 <= out["index"]["dense_recall_at_10"] <= 1.0
    # load once, time again: the store is reused (earlier timed adds stay in it)
    args = ("bench", "latency", "--n", "300", "--users", "3", "--batch", "100", "--samples", "5",
            "--data-dir", str(tmp_path / "store"), "--results-dir", str(tmp_path / "res3"))
    first = json.loads(invoke(*args).stdout)
    again = json.loads(invoke(*args, "--reuse").stdout)
    assert again["reused_store"] and not first["reused_store"]
    assert again["stats"]["events"] == first["stats"]["events"] + 10
    assert again["search_ms"]["p50"] > 0


def test_bench_latency_quantized(tmp_path: Path) -> None:
    res = invoke("bench", "latency", "--n", "300", "--users", "3", "--batch", "100", "--samples", "5",
                 "--vector-quantization", "int8", "--hnsw-threshold", "50", "--results-dir", str(tmp_path / "res"))
    out = json.loads(res.stdout)
    sizes = out["index"]["vector_bytes"]
    # the int8 copies exist for the points loaded before the index was built (timed adds come after)
    assert sizes["points"] >= sizes["quantized_points"] >= 300
    assert sizes["quantized_bytes_per_vector"] == 384 + 4 and sizes["ratio"] > 3.9
    assert out["index"]["dense_recall_at_10"] >= 0.9  # rescored
    doc = _result_file(tmp_path / "res", "latency")
    assert doc["settings"]["vector"]["quantization"] == "int8" and doc["config"]["hnsw_threshold"] == 50


def test_bench_locomo_compression_and_quantization_options(tmp_path: Path) -> None:
    data = write_locomo(tmp_path)
    cache = tmp_path / "emb.npz"
    args = ["bench", "locomo", "--data", str(data), "--budgets", "60,100000", "--compressor", "selfinfo",
            "--compress-rate", "0.6", "--compress-return", "compressed", "--vector-quantization", "binary",
            "--hnsw-threshold", "1", "--oversampling", "3", "--embed-cache", str(cache),
            "--results-dir", str(tmp_path / "res")]
    out = json.loads(invoke(*args).stdout)
    idx = out["index"]
    assert idx["quantized_points"] == idx["points"] and idx["quantized_bytes"] == idx["points"] * 48  # 384 bits
    assert idx["turn_tokens_compressed"] < idx["turn_tokens"] and 0.4 < idx["turn_tokens_kept"] < 0.9
    assert out["tokens_mean"]["60"] <= 60 and out["over_budget"] == 0
    doc = _result_file(tmp_path / "res", "locomo")
    s = doc["settings"]
    assert s["compressor"] == {**s["compressor"], "backend": "selfinfo", "denoise": True, "rate": 0.6,
                               "returns": "compressed"}
    assert s["vector"]["quantization"] == "binary" and s["vector"]["options"] == {"oversampling": 3.0}
    assert cache.is_file()
    again = json.loads(invoke(*args[:-2], "--results-dir", str(tmp_path / "res2")).stdout)
    assert again["recall"] == out["recall"]  # the cached vectors are the embedder's own
    bad = runner.invoke(app, ["bench", "locomo", "--data", str(data), "--compress-return", "compressed"])
    assert bad.exit_code == 2
