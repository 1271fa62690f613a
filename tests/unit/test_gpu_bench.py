"""``memsvc bench kv`` end to end on tiny settings: the JSON has exactly the documented shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch  # noqa: F401  (a [dev] dependency: a broken install fails here)
import transformers  # noqa: F401  (a [dev] dependency: a broken install fails here)
from typer.testing import CliRunner  # noqa: E402

from memsvc.cli import app  # noqa: E402

TINY = """
samples: 4
context_tokens: 128
n_pairs: 4
ratios: [0.5]
timing_runs: 1
decode_tokens: 2
reuse_context_tokens: 192
batch_size: 4
toy: {steps: 0, noise: 0.0}
also_other_layout: false
presses:
  snapkv: {press: snapkv, options: {window_size: 8}}
  streaming_llm: {press: streaming_llm}
  kivi4: {press: kivi, options: {nbits: 4, group_size: 16, residual_length: 16}, ratios: [0.0]}
"""

METRICS = {"accuracy", "kv_bytes", "prefill_ms", "decode_ms_per_token"}


def test_bench_kv_cli_json_shape(tmp_path: Path) -> None:
    from memsvc.cli import bench_kv  # noqa: F401  (registers the command)

    cfg = tmp_path / "kv.yaml"
    cfg.write_text(TINY)
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "kv",
            "--config",
            str(cfg),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--results-dir",
            str(tmp_path / "results"),
            "--threads",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{") : res.stdout.rindex("}") + 1])
    assert set(report) == {"model", "device", "context_tokens", "full", "presses", "episode_reuse"}
    assert report["device"] == "cpu" and report["context_tokens"] == 130
    assert set(report["full"]) == METRICS and report["full"]["accuracy"] == 100.0
    assert set(report["presses"]) == {"snapkv", "streaming_llm"}  # only the configured ratio grid
    assert set(report["presses"]["snapkv"]) == {"0.5"}
    for by_ratio in report["presses"].values():
        for metrics in by_ratio.values():
            assert set(metrics) == METRICS
    assert report["presses"]["snapkv"]["0.5"]["kv_bytes"] * 2 == report["full"]["kv_bytes"]
    assert set(report["episode_reuse"]) == {"ttft_reprefill_ms", "ttft_reuse_ms"}
    [result] = (tmp_path / "results").glob("kv-*.json")
    saved = json.loads(result.read_text())
    assert saved["report"] == report and saved["config"]["samples"] == 4
    assert set(saved["extras"]["other_ratios"]["kivi4"]["0.0"]) == METRICS  # quantization alone: extras
    detail = saved["extras"]["episode_reuse_detail"]
    assert detail["context_tokens"] == 192 and detail["ttft_reuse_ms"] == report["episode_reuse"]["ttft_reuse_ms"]
    assert "episode reuse at 192 tokens on cpu" in res.stderr
    assert {"commit", "machine", "extras"} <= set(saved)
    assert (tmp_path / "cache").is_dir()  # the toy model is cached for the next run


def test_bench_kv_reads_the_model_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memsvc.cli import bench_kv  # noqa: F401  (registers the command)
    from tests.unit.gpu_fixtures import save_tiny_chat_model

    path = save_tiny_chat_model(tmp_path / "m")
    monkeypatch.setenv("MEMSVC_GPU__MODEL", str(path))
    monkeypatch.setenv("MEMSVC_GPU__DEVICE", "cpu")
    cfg = tmp_path / "kv.yaml"
    cfg.write_text(
        "samples: 2\ncontext_tokens: 48\nn_pairs: 2\nratios: [0.5]\ntiming_runs: 1\ndecode_tokens: 2\n"
        "reuse_context_tokens: 96\npresses: {knorm: {press: knorm}}\n"
    )
    res = CliRunner().invoke(
        app, ["bench", "kv", "--config", str(cfg), "--results-dir", str(tmp_path / "r"), "--threads", "1"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{") : res.stdout.rindex("}") + 1])
    assert report["model"] == str(path) and report["device"] == "cpu" and report["context_tokens"] >= 48
    assert set(report) == {"model", "device", "context_tokens", "full", "presses", "episode_reuse"}
    assert set(report["full"]) == METRICS and set(report["presses"]) == {"knorm"}
    assert set(report["presses"]["knorm"]["0.5"]) == METRICS
    assert 0.0 <= report["presses"]["knorm"]["0.5"]["accuracy"] <= 100.0
    assert set(report["episode_reuse"]) == {"ttft_reprefill_ms", "ttft_reuse_ms"}
