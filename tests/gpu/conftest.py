"""GPU tests: collected everywhere, skipped unless CUDA is available (one hook, no scattered skipifs).

Run them with ``pytest -m gpu`` on a machine with a GPU. The hook applies to every item marked ``gpu``,
wherever it lives.
"""

from __future__ import annotations

import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests when there is no CUDA device."""
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device() -> str:
    """The device GPU tests run on."""
    return "cuda"
