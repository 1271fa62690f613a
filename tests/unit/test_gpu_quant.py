"""KIVI quantization helpers: packing round trip and error bounds."""

from __future__ import annotations

import pytest
import torch

from memsvc.gpu.policies.kivi_policy import dequantize, quantize  # noqa: E402


@pytest.mark.parametrize("nbits", [2, 4, 8])
def test_quantize_round_trip_error_is_half_a_step(nbits: int) -> None:
    x = torch.randn(2, 3, 16, 32)
    codes, scale, lo = quantize(x, nbits, dim=-1)
    assert codes.dtype == torch.uint8 and codes.shape[-1] == 32 * nbits // 8
    y = dequantize(codes, scale, lo, nbits)
    assert y.shape == x.shape
    assert bool(((y - x).abs() <= scale / 2 + 1e-5).all())


def test_constant_input_survives() -> None:
    x = torch.full((1, 1, 4, 8), 3.25)
    codes, scale, lo = quantize(x, 4, dim=-1)
    assert torch.allclose(dequantize(codes, scale, lo, 4), x)
