"""The CLI with the real packaged MiniLM embedder (default settings): demo and the LoCoMo bench."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from memsvc.cli import app
from tests.bench_fixtures import write_locomo

runner = CliRunner()


def test_demo_with_minilm_finds_the_dog(minilm: object) -> None:
    # top 3: the as-ingested boundary model opens the Lisbon session with its own 3-turn episode
    # (greeting + plan), so Maya's plan ranks third behind two assistant turns of the longer episode
    res = runner.invoke(app, ["demo", "--limit", "3"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    dog = out.split("» What is the name of Maya's dog")[1].split("»")[0]
    assert "Biscuit" in dog or "beagle" in dog
    lisbon = out.split("» When is the trip to Portugal")[1].split("»")[0]
    assert "Lisbon" in lisbon


def test_bench_locomo_with_minilm(minilm: object, tmp_path: Path) -> None:
    data = write_locomo(tmp_path)
    res = runner.invoke(
        app,
        [
            "bench",
            "locomo",
            "--data",
            str(data),
            "--budgets",
            "40,100000",
            "--results-dir",
            str(tmp_path / "res"),
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["recall"]["100000"] == 100.0
    # ~40 tokens hold one or two turns: MiniLM must still put most evidence first on this easy fixture
    assert out["recall"]["40"] >= 50.0
    assert out["tokens_mean"]["40"] <= 40 and out["over_budget"] == 0
    doc = json.loads(next((tmp_path / "res").glob("locomo-*.json")).read_text())
    assert doc["settings"]["embedder"]["backend"] == "sentence-transformers"
