"""memsvc.gpu stays import-light and its lazy __all__ cannot drift."""

from __future__ import annotations

import subprocess
import sys

import pytest

import memsvc.gpu as gpu


def test_import_gpu_does_not_pull_torch() -> None:
    code = "import sys, memsvc, memsvc.gpu; print(any(m in sys.modules for m in ('torch', 'transformers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_exported_name_resolves() -> None:
    import torch  # noqa: F401  (a [dev] dependency: a broken install fails here)
    for name in gpu.__all__:
        assert getattr(gpu, name) is not None
    assert sorted(dir(gpu)) == sorted(gpu.__all__)
    with pytest.raises(AttributeError):
        gpu.NoSuchThing  # noqa: B018
