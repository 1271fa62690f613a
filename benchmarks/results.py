"""Benchmark results: percentiles, run metadata (commit, machine, config, date) and the results folder.

A result file is ``benchmarks/results/<bench>-<UTC time>-<commit>.json``:
``{"bench", "result", "commit", "dirty", "machine", "config", "settings", "date"}`` where ``result`` is
exactly what the command printed on stdout.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "default_results_dir",
    "git_commit",
    "machine",
    "percentiles",
    "run_start",
    "write_result",
]


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """``{"p50", "p95"}`` in milliseconds (nearest rank on the sorted sample; 0 when empty)."""
    if not seconds:
        return {"p50": 0.0, "p95": 0.0}
    s = sorted(seconds)

    def at(q: float) -> float:
        return round(1000 * s[min(len(s) - 1, int(q * len(s)))], 2)

    return {"p50": at(0.50), "p95": at(0.95)}


def _repo_root() -> Path | None:
    here = Path(__file__).resolve().parent
    for p in (here, *here.parents):
        if (p / ".git").exists():
            return p
    return None


def default_results_dir() -> Path:
    """``benchmarks/results`` of the source checkout (editable install), else of the working directory."""
    root = _repo_root()
    if root is not None and (root / "benchmarks").is_dir():
        return root / "benchmarks" / "results"
    return Path.cwd() / "benchmarks" / "results"


def git_commit() -> tuple[str, bool]:
    """``(commit, dirty)`` of the checkout memsvc runs from (``"unknown"`` outside git)."""
    root = _repo_root()
    if root is None:
        return "unknown", False
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return sha, dirty


def run_start() -> dict[str, Any]:
    """What to record when a benchmark starts: commit, dirty flag, load average, a clock."""
    commit, dirty = git_commit()
    return {"commit": commit, "dirty": dirty, "loadavg": _loadavg(), "t0": time.perf_counter()}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def machine() -> dict[str, Any]:
    """Platform, Python, CPU count and, when importable, torch and its thread count."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "loadavg": _loadavg(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            info["cpu_model"] = names[0]
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch ships with the default embedder
        pass
    return info


def write_result(
    bench: str,
    result: dict[str, Any],
    settings: Any,
    config: dict[str, Any],
    results_dir: Path | None = None,
    started: dict[str, Any] | None = None,
) -> Path:
    """Write ``result`` with its metadata; returns the file path.

    ``started`` is ``run_start()`` taken when the run began: the commit and machine load then (the code
    that ran), with the wall time since.
    """
    start = started or run_start()
    commit, dirty = start["commit"], start["dirty"]
    now = datetime.now(UTC)
    info = machine()
    info["loadavg_start"] = start["loadavg"]
    doc = {
        "bench": bench,
        "result": result,
        "commit": commit,
        "dirty": dirty,
        "machine": info,
        "config": config,
        "settings": json.loads(settings.model_dump_json()) if settings is not None else None,
        "date": now.isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - start["t0"], 1),
    }
    out = results_dir or default_results_dir()
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    stem = f"{bench}-{now:%Y%m%dT%H%M%SZ}-{commit[:8]}"
    for n in range(1, 1000):  # runs finishing in the same second must not overwrite each other
        path = out / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
        try:
            with path.open("x", encoding="utf-8") as f:
                f.write(text)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"too many results named {stem}*.json in {out}")
