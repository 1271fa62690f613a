"""The public surface can't drift: ``__all__`` lists exactly what is exported, and importing memsvc
stays light (no torch, transformers, sqlalchemy at import time)."""

from __future__ import annotations

import subprocess
import sys

import memsvc


def test_all_lists_public_names() -> None:
    public = {n for n in dir(memsvc) if not n.startswith("_")} - {"annotations"}
    modules = {n for n in public if type(getattr(memsvc, n)).__name__ == "module"}
    assert set(memsvc.__all__) - {"__version__"} == (public - modules) | {"exceptions"}
    for name in memsvc.__all__:
        assert hasattr(memsvc, name)


def test_import_does_not_pull_heavy_modules() -> None:
    code = (
        "import sys, memsvc; heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', "
        "'sqlalchemy', 'qdrant_edge', 'llmlingua') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_exception_tree() -> None:
    from memsvc import exceptions as e

    assert issubclass(e.ConfigError, ValueError)
    assert issubclass(e.TimestampError, e.InvalidInputError)
    assert issubclass(e.RecordNotFound, e.StoreError)
    assert e.StoreUnavailable.is_retryable and not e.StoreError.is_retryable
    assert e.GPUOutOfMemory.is_retryable and issubclass(e.GPUOutOfMemory, e.ModelError)
