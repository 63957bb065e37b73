"""Input dtype casts: which are safe, which are refused.

A model class may receive arrays of another dtype than its graph or module takes. Casting within a kind
(float64 -> float32, int32 -> int64) keeps what the input means and is done, and reported; casting across
kinds (int -> float, float -> int, bool -> float) changes the values a user asked for (an int64 image of
sampled integers -2..1 is a different input from a float one), so it is refused with a message that says
which input, which dtypes and what to change. A pure function, so every model class and the pipeline share
one rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from backends.errors import InputMismatchError

InputDtypeError = InputMismatchError


def _kind(dtype: np.dtype) -> str:
    if np.issubdtype(dtype, np.floating):
        return "float"
    if np.issubdtype(dtype, np.bool_):
        return "bool"
    if np.issubdtype(dtype, np.integer):
        return "int"
    return str(dtype)


def cast_inputs(
    inputs: Mapping[str, np.ndarray], expected: Mapping[str, np.dtype | type], where: str
) -> tuple[dict[str, np.ndarray], list[dict[str, object]]]:
    """``inputs`` cast to ``expected`` dtypes (names not in ``expected`` pass unchanged) and one note per
    cast: ``{"input", "from", "to", "exact"}`` (``exact``: the values are unchanged). Raises
    InputMismatchError for a cast across kinds."""
    out: dict[str, np.ndarray] = {}
    notes: list[dict[str, object]] = []
    for name, array in inputs.items():
        array = np.asarray(array)
        if name not in expected or array.dtype == np.dtype(expected[name]):
            out[name] = array
            continue
        src, dst = array.dtype, np.dtype(expected[name])
        if _kind(src) != _kind(dst):
            raise InputMismatchError(
                f"{where}: input '{name}' is {src} but the model takes {dst}; a {_kind(src)} -> "
                f'{_kind(dst)} cast changes the values, so it is not done. Set dtype = "{dst}" for '
                f"'{name}' in the recipe's inputs"
            )
        cast = np.ascontiguousarray(array, dtype=dst)
        exact = bool(np.can_cast(src, dst, "safe")) or bool(np.array_equal(cast, array))
        out[name] = cast
        notes.append({"input": name, "from": str(src), "to": str(dst), "exact": exact})
    return out, notes
