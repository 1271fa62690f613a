"""Queries never interpolate values: every raw SQL string in the service code is a literal (values go in as
bound parameters through SQLAlchemy expressions), and ids full of SQL metacharacters are plain data."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memsvc import Memory, Settings
from memsvc.exceptions import RecordNotFound

ROOT = Path(__file__).resolve().parents[2]
RAW_SQL_CALLS = {"text", "exec_driver_sql", "literal_column", "execute", "executescript"}


def _raw_sql_calls_with_non_literal_sql(root: Path = ROOT) -> list[str]:
    bad = []
    # the code that serves requests; benchmark tools (benchmarks/) create and drop scratch databases by
    # name, DDL that takes no bound parameters and sees no request data
    for folder in ("memsvc", "stores", "migrations", "compressors", "segmenters", "gpu"):
        for path in (root / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                if name not in RAW_SQL_CALLS:
                    continue
                arg = node.args[0]
                # f-strings, "..." % x, "...".format(x), "a" + b: a value spliced into SQL text
                spliced = isinstance(arg, ast.JoinedStr) or (isinstance(arg, ast.BinOp) and isinstance(
                    arg.left, ast.Constant | ast.JoinedStr)) or (isinstance(arg, ast.Call) and isinstance(
                    arg.func, ast.Attribute) and arg.func.attr == "format")
                if spliced:
                    bad.append(f"{path.relative_to(root)}:{node.lineno}")
    return bad


def test_no_sql_text_is_built_from_values() -> None:
    assert _raw_sql_calls_with_non_literal_sql() == []


def test_the_scan_sees_an_interpolated_query(tmp_path: Path) -> None:
    """The scanner above flags the patterns it is meant to catch."""
    fake = tmp_path / "memsvc"
    fake.mkdir()
    (fake / "bad.py").write_text('def f(c, t, u):\n    c.execute(text(f"SELECT * FROM events WHERE user_id = \'{u}\'"))\n'
                                 '    c.exec_driver_sql("DELETE FROM units WHERE id = %s" % t)\n')
    assert sorted(_raw_sql_calls_with_non_literal_sql(tmp_path)) == ["memsvc/bad.py:2", "memsvc/bad.py:3"]


HOSTILE = ["' OR '1'='1", "%", "_", "ann'; DROP TABLE events; --", "\\", '"', "*", "ann%", "a_n"]


def test_hostile_ids_and_filters_are_data(tmp_path: Path) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with Memory(Settings(data_dir=tmp_path / "m", embedder={"backend": "hashing"})) as m:
        m.add("ann walks the dog", user_id="ann", session_id="s", timestamp=t0)
        for i, uid in enumerate(HOSTILE):
            m.add(f"note {i} about the dog", user_id=uid, session_id=uid, timestamp=t0)
        for i, uid in enumerate(HOSTILE):
            hist = m.history(uid, session_id=uid)
            assert [(r.user_id, r.text) for r in hist] == [(uid, f"note {i} about the dog")]
            assert {h.user_id for h in m.search("dog", user_id=uid, session_id=uid)} == {uid}
            assert m.history(uid, session_id="s") == []
            with pytest.raises(RecordNotFound):
                m.get(m.history("ann")[0].id, user_id=uid)
        assert [r.text for r in m.history("ann")] == ["ann walks the dog"]
        assert m.stats()["events"] == len(HOSTILE) + 1
        assert m.for_tenant("' OR '1'='1").stats()["events"] == 0
