"""The built wheel installs exactly one top-level package, ``memsvc``, holding every source folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Repository folder -> where it lives in site-packages (pyproject's package-dir mapping).
INSTALLED_AS = {
    "memsvc": "memsvc",
    "stores": "memsvc/stores",
    "compressors": "memsvc/compressors",
    "segmenters": "memsvc/segmenters",
    "gpu": "memsvc/gpu",
    "migrations": "memsvc/migrations",
    "benchmarks": "memsvc/benchmarks",
}
_NOT_SOURCE = (".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".memsvc", "tests")


def _setuptools_is_usable() -> bool:
    try:
        return int(version("setuptools").split(".")[0]) >= 69
    except (PackageNotFoundError, ValueError):
        return False


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of the checkout (the build writes build/ and egg-info next to it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp / "dist")]
    cmd += ["--disable-pip-version-check"]
    if _setuptools_is_usable():  # build offline with the installed backend; else pip fetches it
        cmd.append("--no-build-isolation")
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    (path,) = (tmp / "dist").glob("memsvc-*.whl")
    return zipfile.ZipFile(path)


def test_only_top_level_package_is_memsvc(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert tops - dist_info == {"memsvc"}


def test_every_source_module_is_packaged_under_memsvc(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    missing = []
    for folder, target in INSTALLED_AS.items():
        for f in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in f.parts:
                rel = f.relative_to(ROOT / folder).as_posix()
                if f"{target}/{rel}" not in names:
                    missing.append(f"{folder}/{rel}")
    assert missing == []


def test_stores_migrations_and_typing_marker_are_packaged(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for required in (
        "memsvc/py.typed",
        "memsvc/stores/__init__.py",
        "memsvc/stores/base.py",
        "memsvc/stores/qdrant.py",
        "memsvc/stores/qdrant_edge.py",
        "memsvc/stores/sql.py",
        "memsvc/migrations/env.py",
        "memsvc/migrations/script.py.mako",
        "memsvc/migrations/versions/0001_initial.py",
    ):
        assert required in names, required
    assert not any(n.startswith(("memsvc/tests/", "tests/")) for n in names)
