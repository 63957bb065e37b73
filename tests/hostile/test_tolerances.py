"""The comparator refuses a tolerance that bounds nothing (issue 25): with ``atol = nan`` every
``diff > bound`` is false: an output 1000 off passed (``"atol": NaN, "passed": true``)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.parity import compare_output
from packager.errors import FieldError


@pytest.mark.parametrize(
    ("atol", "rtol", "field"),
    [
        (float("nan"), 1e-4, "atol"),
        (1e-5, float("nan"), "rtol"),
        (-1e-5, 1e-4, "atol"),
        (1e-5, -1.0, "rtol"),
        (float("inf"), 1e-4, "atol"),
        (1e-5, float("-inf"), "rtol"),
        (np.float32("nan"), 1e-4, "atol"),
        (True, 1e-4, "atol"),
        ("1e-5", 1e-4, "atol"),
        (None, 1e-4, "atol"),
    ],
)
def test_compare_output_refuses_a_tolerance_that_is_no_finite_number(atol, rtol, field: str) -> None:
    ref = np.ones(4, dtype=np.float32)
    with pytest.raises(
        FieldError, match=rf"output 'emb': field '{field}': is .* \(accepted: a finite number >= 0\)"
    ):
        compare_output("emb", ref, ref + 1000, atol, rtol)


def test_a_finite_tolerance_still_compares() -> None:
    ref = np.ones(4, dtype=np.float32)
    assert not compare_output("emb", ref, ref + 1000, 1e-5, 1e-4).passed
    assert compare_output("emb", ref, ref, np.float64(0.0), 0).passed
