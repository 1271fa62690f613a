"""``memsvc bench rest --duration``: a short mixed add/search/context load against a real ``memsvc serve``
subprocess (hashing embedder), with per-operation percentiles and the server's RSS over time."""

from __future__ import annotations

import pytest

from memsvc.benchmarks.rest_load import parse_mix, run


def test_mixed_load_reports_each_operation_and_rss() -> None:
    r = run(clients=2, embedder="hashing", duration=3.0, preload=20, rss_every_s=0.5)
    assert r["mode"] == "mixed" and r["profile"] == "embedded"
    assert r["errors"] == 0, r["error_samples"]
    assert set(r["ops"]) == {"add", "search", "context"}
    assert r["requests"] == sum(o["requests"] for o in r["ops"].values()) > 10
    for o in r["ops"].values():
        assert o["requests"] > 0 and o["errors"] == 0
        assert 0 < o["p50_ms"] <= o["p95_ms"] <= o["p99_ms"] <= o["max_ms"]
    assert r["duration_s"] >= 3.0 and r["throughput_rps"] > 0
    rss = r["server_rss_mb"]
    assert len(rss["series"]) >= 4 and 20 < rss["min"] <= rss["start"] <= rss["max"]
    assert rss["end"] == rss["series"][-1][1]
    assert len(r["loadavg"]["start"]) == 3


def test_parse_mix() -> None:
    assert parse_mix("add=1,search=2,context=0") == {"add": 1.0, "search": 2.0}
    for bad in ("add=x", "delete=1", "add=-1", "add=0"):
        with pytest.raises(ValueError):
            parse_mix(bad)
