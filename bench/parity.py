"""Output parity: compare every named output of a package against the upstream reference.

Rule (named ``allclose`` in reports): an element passes when ``|actual - ref| <= atol + rtol * |ref|``,
numpy.allclose's rule. Names, shapes and dtypes are checked before values (dtype kinds must match, and a
floating output may be narrower than the reference's, as an fp16 package is, but never wider); a NaN or
Inf where the reference is finite always fails. Per output we report the error statistics a person needs
to decide what went wrong: max/mean abs error, max rel error, the worst element, the fraction outside
tolerance, cosine similarity, and the smallest atol (at the configured rtol) and rtol (at the configured
atol) that pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from backends.errors import FieldError

RULE = "allclose: |actual - reference| <= atol + rtol * |reference|"

# torch.testing's defaults per dtype; each backend's spec widens them where it computes differently.
DTYPE_TOLERANCES: dict[str, tuple[float, float]] = {  # dtype -> (atol, rtol)
    "float64": (1e-7, 1e-7),
    "float32": (1e-5, 1.3e-6),
    "float16": (1e-5, 1e-3),
    "bfloat16": (1e-5, 1.6e-2),
}


@dataclass(frozen=True)
class OutputParity:
    """The comparison of one named output."""

    output: str
    passed: bool
    reason: str
    shape: list[int]
    ref_shape: list[int]
    dtype: str
    ref_dtype: str
    atol: float
    rtol: float
    max_abs: float | None = None
    mean_abs: float | None = None
    max_rel: float | None = None
    worst_index: list[int] | None = None
    frac_outside: float | None = None
    outside: int | None = None
    """How many elements are outside tolerance (``frac_outside`` rounds to 0.00% for a few in a million)."""
    cosine: float | None = None
    min_atol: float | None = None
    min_rtol: float | None = None
    nonfinite: int = 0
    step: int | None = None
    """In a sequence of calls: the step this entry describes (the first failing one, else the one with the
    largest error; counted from 0) and how many steps were compared."""
    steps: int | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def default_tolerance(dtype: str, backend: str, quantization: str = "fp32") -> tuple[float, float]:
    """The (atol, rtol) used when the recipe sets none: the looser of the dtype's and the backend's
    (``BackendSpec.tolerance``, ``half_tolerance`` for fp16/bf16 packages; any of its names works)."""
    from backends.registry import find_backend
    from backends.spec import DEFAULT_TOLERANCE, HALF_TOLERANCE

    d_atol, d_rtol = DTYPE_TOLERANCES.get(dtype, (0.0, 0.0))
    spec = find_backend(backend)
    half = quantization in ("fp16", "bf16")
    if spec is None:
        b_atol, b_rtol = HALF_TOLERANCE if half else DEFAULT_TOLERANCE
    else:
        b_atol, b_rtol = spec.half_tolerance if half else spec.tolerance
    if not np.issubdtype(np.dtype(dtype if dtype != "bfloat16" else "float32"), np.floating):
        return 0.0, 0.0  # integer outputs (token ids, class ids) must match exactly
    return max(d_atol, b_atol), max(d_rtol, b_rtol)


def compare_output(name: str, ref: np.ndarray, actual: np.ndarray, atol: float, rtol: float) -> OutputParity:
    """Compare one output; never raises on mismatching data, it reports it. A tolerance that is no finite
    number >= 0 is refused (FieldError, bad input): a NaN bound makes every comparison false, so nothing
    would ever be outside it and any output would pass."""
    for label, value in (("atol", atol), ("rtol", rtol)):
        number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            where = f"parity of output {name!r}"
            raise FieldError(label, f"is {value!r}", "a finite number >= 0", where=where)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _compare(name, ref, actual, atol, rtol)


def _compare(name: str, ref: np.ndarray, actual: np.ndarray, atol: float, rtol: float) -> OutputParity:
    ref = np.asarray(ref)
    actual = np.asarray(actual)
    base = {
        "output": name,
        "shape": list(actual.shape),
        "ref_shape": list(ref.shape),
        "dtype": str(actual.dtype),
        "ref_dtype": str(ref.dtype),
        "atol": atol,
        "rtol": rtol,
    }
    if actual.shape != ref.shape:
        return OutputParity(passed=False, reason=f"shape {actual.shape} != reference {ref.shape}", **base)
    if _kind(actual.dtype) != _kind(ref.dtype):
        return OutputParity(
            passed=False, reason=f"dtype {actual.dtype} is not comparable to {ref.dtype}", **base
        )
    if _kind(actual.dtype) == "float" and actual.dtype.itemsize > ref.dtype.itemsize:
        return OutputParity(
            passed=False,
            reason=f"dtype {actual.dtype} is wider than the reference's {ref.dtype} (the package does not "
            "compute in the precision it declares)",
            **base,
        )
    a = actual.astype(np.float64)
    r = ref.astype(np.float64)
    ref_finite = np.isfinite(r)
    new_nonfinite = int(np.count_nonzero(~np.isfinite(a) & ref_finite))
    if a.size == 0:
        return OutputParity(passed=True, reason="empty", nonfinite=0, **base)
    # Non-finite values in the reference must be matched exactly (NaN where NaN, same-signed Inf).
    same_special = (~ref_finite) & ((np.isnan(r) & np.isnan(a)) | (r == a))
    diff = np.where(ref_finite & np.isfinite(a), np.abs(a - r), np.inf)
    diff = np.where(same_special, 0.0, diff)
    bound = atol + rtol * np.abs(np.where(ref_finite, r, 0.0))
    outside = diff > bound
    worst = int(np.argmax(np.where(np.isfinite(diff), diff, np.finfo(np.float64).max)))
    finite_diff = diff[np.isfinite(diff)]
    denom = np.abs(r)
    rel = np.divide(diff, denom, out=np.full_like(diff, np.inf), where=denom > 0)
    rel = np.where(diff == 0, 0.0, rel)
    stats = {
        "max_abs": float(np.max(diff)) if diff.size else 0.0,
        "mean_abs": float(np.mean(finite_diff)) if finite_diff.size else float("inf"),
        "max_rel": float(np.max(rel)),
        "worst_index": [int(i) for i in np.unravel_index(worst, a.shape)],
        "frac_outside": float(np.count_nonzero(outside)) / a.size,
        "outside": int(np.count_nonzero(outside)),
        "cosine": _cosine(a, r),
        "min_atol": _min_tol(diff - rtol * np.abs(np.where(ref_finite, r, 0.0))),
        "min_rtol": _min_rtol(diff, r, atol),
        "nonfinite": new_nonfinite,
    }
    if new_nonfinite:
        return OutputParity(
            passed=False, reason=f"{new_nonfinite} NaN/Inf where the reference is finite", **base, **stats
        )
    if np.any(outside):
        return OutputParity(passed=False, reason=outside_reason(stats["outside"], a.size), **base, **stats)
    return OutputParity(passed=True, reason="ok", **base, **stats)


def outside_reason(count: int, size: int) -> str:
    """``18 of 1417000 elements (1.27e-05) outside tolerance``: the count, and a fraction in 3 significant
    digits, so a handful of elements in a million never reads as 0.00%."""
    return f"{count} of {size} elements ({count / size:.3g}) outside tolerance"


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    tolerance_for: callable,  # (output_name, dtype) -> (atol, rtol)
) -> list[OutputParity]:
    """Compare all outputs by name. Missing and unexpected outputs are failures of their own."""
    results = []
    for name in sorted(set(reference) | set(actual)):
        if name not in actual:
            ref = np.asarray(reference[name])
            results.append(_missing(name, ref, "missing from the package's outputs", tolerance_for))
        elif name not in reference:
            got = np.asarray(actual[name])
            results.append(_missing(name, got, "not produced by the reference", tolerance_for, swap=True))
        else:
            atol, rtol = tolerance_for(name, str(np.asarray(reference[name]).dtype))
            results.append(compare_output(name, reference[name], actual[name], atol, rtol))
    return results


def compare_sequence(
    reference: Sequence[Mapping[str, np.ndarray]],
    actual: Sequence[Mapping[str, np.ndarray]],
    tolerance_for: callable,  # (output_name, dtype) -> (atol, rtol)
) -> list[OutputParity]:
    """Compare a sequence of calls step by step (a recurrent model's outputs, its state included); one entry
    per output: its first failing step, else its step with the largest error, with ``step``/``steps``."""
    if len(actual) != len(reference):
        raise ValueError(f"{len(actual)} steps compared with a reference of {len(reference)}")
    per_step = [compare_outputs(r, a, tolerance_for) for r, a in zip(reference, actual, strict=True)]
    results = []
    for name in sorted({p.output for step_results in per_step for p in step_results}):
        entries = [(step, p) for step, rs in enumerate(per_step) for p in rs if p.output == name]
        failing = [(step, e) for step, e in entries if not e.passed]
        step, chosen = failing[0] if failing else max(entries, key=lambda se: se[1].max_abs or 0.0)
        reason = chosen.reason if chosen.passed else f"at step {step} of {len(reference)}: {chosen.reason}"
        results.append(replace(chosen, reason=reason, step=step, steps=len(reference)))
    return results


def _missing(
    name: str, arr: np.ndarray, reason: str, tolerance_for: callable, swap: bool = False
) -> OutputParity:
    atol, rtol = tolerance_for(name, str(arr.dtype))
    shapes = {"shape": [] if not swap else list(arr.shape), "ref_shape": list(arr.shape) if not swap else []}
    dtypes = {"dtype": "" if not swap else str(arr.dtype), "ref_dtype": str(arr.dtype) if not swap else ""}
    return OutputParity(output=name, passed=False, reason=reason, atol=atol, rtol=rtol, **shapes, **dtypes)


def _kind(dtype: np.dtype) -> str:
    if np.issubdtype(dtype, np.floating):
        return "float"
    if np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_):
        return "int"
    return str(dtype)


def _cosine(a: np.ndarray, r: np.ndarray) -> float | None:
    a = a.ravel()
    r = r.ravel()
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(r))):
        return None
    na, nr = np.linalg.norm(a), np.linalg.norm(r)
    if na == 0 or nr == 0:
        return 1.0 if na == nr else 0.0
    return float(np.dot(a, r) / (na * nr))


def _min_tol(excess: np.ndarray) -> float:
    """Smallest atol that passes given the configured rtol (inf when some element can never pass)."""
    return float(max(0.0, np.max(excess))) if excess.size else 0.0


def _min_rtol(diff: np.ndarray, r: np.ndarray, atol: float) -> float:
    """Smallest rtol that passes given the configured atol."""
    need = diff - atol
    denom = np.abs(r)
    if np.any((need > 0) & ~(denom > 0)):
        return float("inf")
    ratios = np.divide(need, denom, out=np.zeros_like(need), where=denom > 0)
    return float(max(0.0, np.max(ratios))) if ratios.size else 0.0


def cosine_rows(reference: np.ndarray, actual: np.ndarray) -> float:
    """Minimum per-row cosine similarity of two embedding batches (the consumer's embedding check)."""
    r = reference.reshape(reference.shape[0], -1).astype(np.float64)
    a = actual.reshape(actual.shape[0], -1).astype(np.float64)
    num = np.sum(r * a, axis=1)
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(a, axis=1)
    return float(np.min(np.divide(num, den, out=np.zeros_like(num), where=den > 0)))


# --- Measured noise floor (reference fp32 vs fp64) ---------------------------------------------------

NOISE_FLOOR_FACTOR = 4.0
"""Derived atol = factor x the reference's own fp32 error (``max |ref_fp32 - ref_fp64|``).

Why 4: a package as accurate as the fp32 reference sits within the same error of the fp64 truth, so its
distance to the fp32 reference is at most twice the noise (triangle inequality); another factor of two
covers inputs other than the parity batch and reordered float sums in graph optimisers."""
PRECISION_SCALE = {"fp32": 1.0, "fp16": 2.0**13, "bf16": 2.0**16, "int8": 2.0**16, "unknown": 1.0}
"""Packages computing at lower precision than the reference are allowed proportionally more error:
machine epsilon relative to fp32's (fp16 eps 2^-10 vs 2^-23; bf16 2^-7)."""
NOISE_FLOOR_METHOD = (
    "atol = factor * precision_scale * max|ref_fp32 - ref_fp64| per output, rtol = 0; the reference "
    "model class run in float64 on the CPU on the parity inputs"
)


def noise_floor(
    ref32: Mapping[str, np.ndarray], ref64: Mapping[str, np.ndarray], factor: float = NOISE_FLOOR_FACTOR
) -> dict[str, dict[str, float | str]]:
    """Per floating-point output: how much the fp32 reference itself differs from its fp64 run, and the
    (atol, rtol) derived from it for fp32 packages. Non-float or missing outputs, and outputs the fp64 run
    did not return as float64, are skipped (their tolerances fall back to the defaults)."""
    out: dict[str, dict[str, float | str]] = {}
    for name, r32 in ref32.items():
        r32 = np.asarray(r32)
        if name not in ref64 or not np.issubdtype(r32.dtype, np.floating):
            continue
        r64 = np.asarray(ref64[name])
        if r64.shape != r32.shape or r64.dtype != np.float64:
            continue  # not really run in float64 (a class casting its outputs): no floor, defaults apply
        with np.errstate(invalid="ignore", divide="ignore"):
            finite = np.isfinite(r64) & np.isfinite(r32)
            diff = np.abs(r32.astype(np.float64) - r64)[finite]
            mag = np.abs(r64)[finite]
            rel = np.divide(diff, mag, out=np.zeros_like(diff), where=mag > 0)
        max_abs = float(diff.max()) if diff.size else 0.0
        # A reference that is bit-exact in fp32 and fp64 (integer-valued outputs) still gets one fp32 ulp
        # of its largest magnitude, so the derived tolerance is never zero.
        ulp = float(np.spacing(np.float32(mag.max()))) if mag.size else 0.0
        out[name] = {
            "max_abs": max_abs,
            "mean_abs": float(diff.mean()) if diff.size else 0.0,
            "p99_abs": float(np.percentile(diff, 99)) if diff.size else 0.0,
            "max_rel": float(rel.max()) if rel.size else 0.0,
            "factor": factor,
            "atol": factor * max(max_abs, ulp),
            "rtol": 0.0,
        }
    return out


def noise_floor_tolerance(floor: Mapping[str, float], quantization: str = "fp32") -> tuple[float, float]:
    """The (atol, rtol) a package of ``quantization`` gets from one output's measured noise floor."""
    scale = PRECISION_SCALE.get(quantization, 1.0)
    return float(floor["atol"]) * scale, float(floor["rtol"]) * scale


def as_float64(model: object) -> object:
    """Convert a loaded reference model class to float64 in place, where it wraps a torch module
    (``model`` itself, or its ``model`` / ``module`` attribute); returns it. Raises TypeError otherwise."""
    for candidate in (model, getattr(model, "model", None), getattr(model, "module", None)):
        if candidate is not None and hasattr(candidate, "double") and hasattr(candidate, "parameters"):
            candidate.double()
            return model
    raise TypeError(f"{type(model).__name__} wraps no torch module that can run in float64")
