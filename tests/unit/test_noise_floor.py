"""Noise floor: tolerances derived from how far the fp32 reference is from its own fp64 run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.parity import (
    NOISE_FLOOR_FACTOR,
    as_float64,
    compare_output,
    noise_floor,
    noise_floor_tolerance,
)


def test_noise_floor_on_known_arrays() -> None:
    ref64 = {"y": np.array([1.0, -2.0, 4.0]), "ids": np.array([1, 2, 3])}
    ref32 = {"y": np.array([1.0 + 1e-6, -2.0, 4.0 - 3e-6], dtype=np.float32), "ids": np.array([1, 2, 3])}
    floors = noise_floor(ref32, ref64)
    assert set(floors) == {"y"}  # integer outputs are compared exactly, no floor
    f = floors["y"]
    err = np.abs(ref32["y"].astype(np.float64) - ref64["y"])
    assert f["max_abs"] == pytest.approx(err.max())
    assert f["mean_abs"] == pytest.approx(err.mean())
    assert f["max_rel"] == pytest.approx((err / np.abs(ref64["y"])).max())
    assert f["atol"] == pytest.approx(NOISE_FLOOR_FACTOR * err.max()) and f["rtol"] == 0.0
    # fp32 package: as accurate as the reference passes; 10x the noise fails
    atol, rtol = noise_floor_tolerance(f, "fp32")
    ok = ref32["y"] + np.float32(err.max())
    assert compare_output("y", ref32["y"], ok, atol, rtol).passed
    bad = ref32["y"] + np.float32(10 * err.max() * NOISE_FLOOR_FACTOR)
    assert not compare_output("y", ref32["y"], bad, atol, rtol).passed
    # fp16 packages get eps(fp16)/eps(fp32) = 2^13 times more
    assert noise_floor_tolerance(f, "fp16")[0] == pytest.approx(atol * 2**13)


def test_outputs_not_returned_in_float64_get_no_floor() -> None:
    ref = {"y": np.array([0.5, 3.0], dtype=np.float32)}
    assert noise_floor(ref, {"y": ref["y"].copy()}) == {}


def test_bit_exact_reference_still_gets_one_ulp() -> None:
    ref = {"y": np.array([0.5, 3.0], dtype=np.float32)}
    f = noise_floor(ref, {"y": ref["y"].astype(np.float64)})["y"]
    assert f["max_abs"] == 0.0 and f["atol"] == pytest.approx(
        NOISE_FLOOR_FACTOR * np.spacing(np.float32(3.0))
    )


class _Wrapper:
    """A model class that keeps its torch module in ``.model``, as HFModel does."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))

    def infer(self, inputs: dict) -> dict:
        p = next(self.model.parameters())
        x = torch.from_numpy(inputs["x"]).to(p.dtype)
        with torch.inference_mode():
            return {"y": self.model(x).numpy()}


def test_float64_reference_from_a_real_torch_module() -> None:
    x = {"x": np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)}
    ref32 = _Wrapper().infer(x)
    model64 = as_float64(_Wrapper())
    ref64 = model64.infer(x)
    assert ref64["y"].dtype == np.float64
    f = noise_floor(ref32, ref64)["y"]
    assert 0 < f["max_abs"] < 1e-5  # fp32 rounding, not a different model


def test_as_float64_refuses_non_torch_models() -> None:
    with pytest.raises(TypeError, match="object wraps no torch module that can run in float64"):
        as_float64(object())
