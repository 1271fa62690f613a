"""Benchmark result files: runs that finish in the same second keep separate files."""

from __future__ import annotations

import json
from pathlib import Path

from memsvc.benchmarks.results import run_start, write_result


def test_results_written_in_one_second_do_not_overwrite(tmp_path: Path) -> None:
    started = run_start()
    paths = [write_result("latency", {"run": i}, None, {"i": i}, tmp_path, started) for i in range(3)]
    assert len(set(paths)) == 3
    assert sorted(json.loads(p.read_text())["result"]["run"] for p in paths) == [0, 1, 2]
