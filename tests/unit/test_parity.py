"""Parity statistics on known arrays: each failure mode reported, each statistic computed correctly."""

from __future__ import annotations

import numpy as np
import pytest

from bench.parity import compare_output, compare_outputs, cosine_rows, default_tolerance


def test_identical_passes_with_zero_error() -> None:
    a = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    r = compare_output("x", a, a.copy(), 1e-5, 1e-5)
    assert r.passed and r.max_abs == 0.0 and r.min_atol == 0.0 and r.cosine == pytest.approx(1.0)


def test_statistics_on_known_difference() -> None:
    ref = np.array([1.0, 2.0, 4.0, -8.0])
    act = np.array([1.0, 2.1, 4.0, -8.4])
    r = compare_output("x", ref, act, atol=0.05, rtol=0.0)
    assert not r.passed
    assert r.max_abs == pytest.approx(0.4)
    assert r.mean_abs == pytest.approx(0.125)
    assert r.max_rel == pytest.approx(0.05)
    assert r.worst_index == [3]
    assert r.frac_outside == pytest.approx(0.5)
    assert r.min_atol == pytest.approx(0.4)
    assert r.min_rtol == pytest.approx((0.4 - 0.05) / 8.0)
    # The reported minimum tolerances really are the boundary: they pass, a hair less fails.
    assert compare_output("x", ref, act, r.min_atol, 0.0).passed
    assert not compare_output("x", ref, act, r.min_atol * 0.99, 0.0).passed


def test_allclose_rule_uses_atol_plus_rtol() -> None:
    ref = np.array([100.0])
    act = np.array([100.5])
    assert compare_output("x", ref, act, atol=0.0, rtol=0.006).passed
    assert not compare_output("x", ref, act, atol=0.0, rtol=0.004).passed
    assert compare_output("x", ref, act, atol=0.1, rtol=0.004).passed


def test_shape_mismatch_fails_before_values() -> None:
    r = compare_output("x", np.zeros((2, 3)), np.zeros((3, 2)), 1.0, 1.0)
    assert not r.passed and "shape" in r.reason and r.max_abs is None


def test_dtype_kind_mismatch_fails() -> None:
    r = compare_output("x", np.zeros(3, dtype=np.float32), np.zeros(3, dtype=np.int64), 1.0, 1.0)
    assert not r.passed and "dtype" in r.reason


def test_nan_where_reference_finite_always_fails() -> None:
    ref = np.ones(4)
    act = np.array([1.0, np.nan, 1.0, 1.0])
    r = compare_output("x", ref, act, atol=1e9, rtol=1e9)
    assert not r.passed and r.nonfinite == 1 and "NaN" in r.reason


def test_matching_nan_and_inf_in_reference_pass() -> None:
    ref = np.array([1.0, np.nan, np.inf])
    assert compare_output("x", ref, ref.copy(), 1e-6, 0.0).passed
    assert not compare_output("x", ref, np.array([1.0, np.nan, -np.inf]), 1e-6, 0.0).passed


def test_missing_and_extra_outputs_fail_by_name() -> None:
    results = compare_outputs(
        {"a": np.ones(2), "b": np.ones(2)},
        {"a": np.ones(2), "c": np.ones(2)},
        lambda name, dtype: (1e-5, 1e-5),
    )
    by_name = {r.output: r for r in results}
    assert by_name["a"].passed
    assert not by_name["b"].passed and "missing" in by_name["b"].reason
    assert not by_name["c"].passed and "not produced" in by_name["c"].reason


def test_default_tolerances_loosen_for_fp16_and_trt() -> None:
    fp32_onnx = default_tolerance("float32", "onnx")
    fp16_trt = default_tolerance("float16", "trt", "fp16")
    assert fp16_trt[0] > fp32_onnx[0] and fp16_trt[1] > fp32_onnx[1]
    assert default_tolerance("int64", "onnx") == (0.0, 0.0)


def test_cosine_rows_is_minimum_over_rows() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 1.0]])
    act = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert cosine_rows(ref, act) == pytest.approx(np.sqrt(0.5))


def test_reason_counts_the_elements_outside_tolerance() -> None:
    """Issue 11, friction 7: 18 of 1,417,000 elements outside used to read '0.00% of elements'."""
    ref = np.zeros(1_417_000, dtype=np.float32)
    actual = ref.copy()
    actual[:18] = 1.0
    r = compare_output("y", ref, actual, 1e-5, 0.0)
    assert not r.passed
    assert r.reason == "18 of 1417000 elements (1.27e-05) outside tolerance"
    assert r.outside == 18
