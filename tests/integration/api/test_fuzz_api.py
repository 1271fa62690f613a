"""schemathesis against the served app's OpenAPI schema (``memsvc bench fuzz`` with a few hundred
requests): no 5xx, every 4xx with the error body, rejected writes change nothing, no request without a
valid key accepted, the other tenant untouched. The bench runs the same code with >= 5,000 requests."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from memsvc.cli import app


def test_bench_fuzz_finds_nothing(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "fuzz", "--requests", "240", "--seed", "7", "--results-dir",
                                   str(tmp_path)])
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1, res.output
    doc = json.loads(files[0].read_text())
    r = doc["result"]
    assert r["requests"] == 240
    assert r["server_errors"] == 0, r["server_error_samples"]
    assert r["4xx_without_error_body"] == 0, r["bad_body_samples"]
    assert r["rejected_writes_that_changed_data"] == 0, r["changed_samples"]
    assert r["unauthenticated_accepted"] == 0, r["unauthenticated_samples"]
    assert r["other_tenant_unchanged"] and r["ok"]
    assert res.exit_code == 0, res.output
    counts = {int(k): v for k, v in r["status_counts"].items()}
    # the run really exercised every operation, accepted writes and rejected all kinds of input
    assert r["operations"] >= 15 and len(r["per_operation"]) == r["operations"]
    assert counts.get(200, 0) > 20 and counts.get(401, 0) >= 20 and counts.get(422, 0) > 20
    assert sum(v for k, v in counts.items() if 400 <= k < 500) > 100
    assert doc["bench"] == "fuzz" and doc["config"]["requests"] == 240
