"""Bad input raises a typed error from memsvc.exceptions and leaves stored data untouched."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memsvc import Memory, Settings
from memsvc import exceptions as ex

T0 = datetime(2023, 5, 8, tzinfo=UTC)


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[Memory]:
    m = Memory(Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing"}, limits={"max_text_chars": 1000}))
    m.add([{"role": "user", "content": "baseline memory about tea"}], user_id="u", session_id="s", timestamp=T0)
    yield m
    m.close()


BAD_ADDS: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"messages": [{"role": "user", "content": ""}]}, ex.EmptyTextError),
    ({"messages": [{"role": "user", "content": "   \n"}]}, ex.EmptyTextError),
    ({"messages": [{"role": "user", "content": "x" * 1001}]}, ex.TextTooLongError),
    ({"messages": [{"role": "user", "content": 42}]}, ex.InvalidInputError),
    ({"messages": [{"role": "robot", "content": "hi"}]}, ex.InvalidInputError),
    ({"messages": [{"role": "user", "content": "hi", "bogus": 1}]}, ex.InvalidInputError),
    ({"messages": []}, ex.InvalidInputError),
    ({"messages": "fine", "user_id": ""}, ex.InvalidInputError),
    ({"messages": "fine", "user_id": 7}, ex.InvalidInputError),
    ({"messages": "fine", "timestamp": datetime(2023, 1, 1)}, ex.TimestampError),
    ({"messages": "fine", "timestamp": "yesterday"}, ex.TimestampError),
    ({"messages": "fine", "timestamp": float("nan")}, ex.TimestampError),
    ({"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": ""}]}, ex.EmptyTextError),
    ({"messages": "fine", "metadata": {"x": object()}}, ex.InvalidInputError),
    ({"messages": "has \x00 nul"}, ex.InvalidInputError),
]


@pytest.mark.parametrize(("kwargs", "err"), BAD_ADDS)
def test_bad_add_changes_nothing(mem: Memory, kwargs: dict[str, Any], err: type[Exception]) -> None:
    before = mem.stats()
    args = {"user_id": "u", "session_id": "s", "timestamp": T0} | kwargs
    with pytest.raises(err):
        mem.add(**args)
    assert mem.stats() == before


@pytest.mark.parametrize(
    ("kwargs", "err"),
    [
        ({"query": ""}, ex.EmptyTextError),
        ({"query": "tea", "limit": 0}, ex.InvalidInputError),
        ({"query": "tea", "budget_tokens": -5}, ex.InvalidInputError),
        ({"query": "tea", "time_range": (T0, datetime(2020, 1, 1, tzinfo=UTC))}, ex.TimestampError),
        ({"query": "tea", "time_range": (datetime(2020, 1, 1), None)}, ex.TimestampError),
        ({"query": "tea", "levels": ["paragraph"]}, ex.InvalidInputError),
        ({"query": "tea", "user_id": None}, ex.InvalidInputError),
    ],
)
def test_bad_search(mem: Memory, kwargs: dict[str, Any], err: type[Exception]) -> None:
    with pytest.raises(err):
        mem.search(**({"user_id": "u"} | kwargs))


def test_bad_frames_and_ids(mem: Memory) -> None:
    before = mem.stats()
    ts = [T0, T0]
    with pytest.raises(ex.EmbeddingError):
        mem.add_frames("cam", "u", ts, embeddings=np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ex.EmbeddingError):
        mem.add_frames("cam", "u", ts, embeddings=np.ones((3, 4)))
    with pytest.raises(ex.InvalidInputError, match="neither"):
        mem.add_frames("cam", "u", ts, captions=["door opens", None])
    with pytest.raises(ex.InvalidInputError):
        mem.add_frames("cam", "u", ts, captions=["one"])
    with pytest.raises(ex.TimestampError):
        mem.add_frames("cam", "u", [datetime(2023, 1, 1)], captions=["x"])
    with pytest.raises(ex.RecordNotFound):
        mem.delete("not-a-known-id")
    with pytest.raises(ex.RecordNotFound):
        mem.get("not-a-known-id", user_id="u")
    with pytest.raises(ex.InvalidInputError):
        mem.history(user_id="u", limit=0)
    assert mem.stats() == before


def test_mismatched_embedder_is_refused(tmp_path: Path) -> None:
    m = Memory(Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing", "options": {"dim": 64}}))
    m.add("hello there", user_id="u", timestamp=T0)
    m.close()
    with pytest.raises(ex.IndexMismatchError, match="hashing"):
        Memory(Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing", "options": {"dim": 32}}))


def test_doctor_reindexes_for_a_new_embedder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from memsvc.cli import app, main  # noqa: F401
    from memsvc.cli import doctor as _doctor  # noqa: F401  (registers the command)

    m = Memory(Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing", "options": {"dim": 64}}))
    ids = m.add("hello there, I like green tea", user_id="u", timestamp=T0)
    m.close()
    runner = CliRunner()
    env = {"MEMSVC_EMBEDDER__BACKEND": "hashing", "MEMSVC_EMBEDDER__OPTIONS": '{"dim": 32}'}
    res = runner.invoke(app, ["doctor", "--data-dir", str(tmp_path / "m")], env=env)
    assert isinstance(res.exception, ex.IndexMismatchError)
    res = runner.invoke(app, ["doctor", "--data-dir", str(tmp_path / "m"), "--reindex"], env=env)
    assert res.exit_code == 0, res.output
    import json

    report = json.loads(res.output)
    assert report["units"] == report["vectors"] == 2 and report["missing_vectors"] == 0  # rebuilt on open
    assert report["embedder"]["dim"] == "32"
    m = Memory(Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing", "options": {"dim": 32}}))
    try:
        assert m.search("green tea", user_id="u")[0].source_ids == ids
        assert m.stats("u")["vectors"] == 2
    finally:
        m.close()
