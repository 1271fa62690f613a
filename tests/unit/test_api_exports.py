"""The REST/client/integration modules export what ``__all__`` says, and the HTTP client stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

MODULES = ["memsvc.api", "memsvc.client", "memsvc.integrations.langchain", "memsvc.integrations.langgraph",
           "memsvc.stores.sql_keys"]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    if name.endswith("langgraph"):
        import langgraph  # noqa: F401  (a [dev] dependency: a broken install fails here)
    mod = importlib.import_module(name)
    assert mod.__all__ and all(hasattr(mod, n) for n in mod.__all__)


def test_client_import_is_light() -> None:
    code = ("import sys, memsvc.client; heavy = [m for m in ('torch', 'sentence_transformers', 'sqlalchemy', "
            "'fastapi', 'qdrant_edge') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
