"""bench.attempts: every package attempted appears once per device, failed ones with their reason."""

from __future__ import annotations

from bench.attempts import attempts, by_package, short


def parity(variant: str, backend: str, device: str, output: str, passed: bool, reason: str = "ok") -> dict:
    return {
        "variant": variant, "backend": backend, "device": device, "output": output,
        "passed": passed, "reason": reason,
    }  # fmt: skip


REPORT = {
    "packages": [{"variant": "l6", "backend": b} for b in ("onnx", "torch", "hf")],
    "parity": [
        parity("l6", "onnx", "cpu", "a", True),
        parity("l6", "onnx", "cpu", "b", False, "3.00% of elements outside tolerance"),
        parity("l6", "torch", "cpu", "a", True),
    ],
    "task_checks": [],
    "failures": [
        {
            "stage": "export",
            "variant": "l6",
            "backend": "trt",
            "device": None,
            "message": "x\ny",
            "reason": "missing extra: pip install 'weightpack[gpu]' (tensorrt)",
        },
        {
            "stage": "load",
            "variant": "l6",
            "backend": "hf",
            "device": "cuda:0",
            "message": "OSError: " + "z" * 99,
        },
    ],
}


def test_every_attempt_once_with_its_reason() -> None:
    rows = {(a.variant, a.backend, a.device): a for a in attempts(REPORT)}
    assert set(rows) == {
        ("l6", "onnx", "cpu"),
        ("l6", "torch", "cpu"),
        ("l6", "trt", None),
        ("l6", "hf", "cuda:0"),
    }
    assert rows["l6", "torch", "cpu"].passed and rows["l6", "torch", "cpu"].reason == ""
    assert rows["l6", "onnx", "cpu"].reason == "parity b: 3.00% of elements outside tolerance"
    assert rows["l6", "trt", None].reason.startswith("missing extra")
    # a v1 report has no recorded reason: stage and message, cut short
    assert rows["l6", "hf", "cuda:0"].reason.startswith("load failed: OSError: zzz")
    assert rows["l6", "hf", "cuda:0"].reason.endswith("…") and len(rows["l6", "hf", "cuda:0"].reason) == 72


def test_by_package_folds_devices() -> None:
    folded = {(a.variant, a.backend): a for a in by_package(REPORT)}
    assert [k for k in folded] == [("l6", "onnx"), ("l6", "torch"), ("l6", "trt"), ("l6", "hf")]
    assert folded["l6", "hf"].reason.startswith("cuda:0: load failed")
    assert not folded["l6", "onnx"].passed and folded["l6", "torch"].passed


def test_short_keeps_the_first_line() -> None:
    assert short("first\nsecond") == "first"
    assert short("") == ""


def test_a_recipe_or_variant_failure_is_a_row_with_its_reason() -> None:
    """A failure before any package (the recipe's module, a variant's reference, a full disk) is listed
    too: the terminal summary must never be an empty table over "FAILED"."""
    report = {
        "packages": [],
        "parity": [],
        "task_checks": [],
        "failures": [
            {"stage": "recipe", "variant": "*", "backend": None, "device": None, "message": "m",
             "reason": "bad input: model.factory 'x:Y' cannot be imported"},
            {"stage": "reference", "variant": "onet", "backend": "reference", "device": None,
             "message": "m", "reason": "bad input: input image expects [4, 3, 48, 48]"},
        ],
    }  # fmt: skip
    rows = attempts(report)
    expected = [("*", "*", False), ("onet", "reference", False)]
    assert [(a.variant, a.backend, a.passed) for a in rows] == expected
    assert "cannot be imported" in rows[0].reason and "expects" in rows[1].reason
