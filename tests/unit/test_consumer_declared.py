"""Issue 20.1: every built-in family is the consumer's or says it is not, and then every output says
"inference-models cannot load this package" instead of PASSED (the terminal summary, report.md,
report.json and ``--json``). The recipe fields: ``[consumer]`` and ``[parity.task]``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from bench.markdown import render_markdown
from bench.parity import compare_output
from bench.report import CANNOT_LOAD, Report
from packager import outcome as summary
from packager.consumer import is_consumer_class
from packager.errors import RecipeError
from packager.recipes import default_recipe_dirs, find_recipes, load_recipe

BUILTIN = sorted(find_recipes(default_recipe_dirs()[-1]).values())


@pytest.mark.parametrize("path", BUILTIN, ids=[p.stem for p in BUILTIN])
def test_each_builtin_family_is_the_consumers_or_says_it_is_not(path: Path) -> None:
    recipe = load_recipe(path)
    if recipe.consumer.refused:
        assert "inference-models" in recipe.consumer.reason and "no" in recipe.consumer.reason
    else:
        assert recipe.consumer.loads is True, f"{path.name}: [consumer] loads is not declared"
        for name, backend in recipe.backends.items():
            assert backend.model_class and is_consumer_class(backend.model_class), f"{path.name}: {name}"
        assert recipe.parity.task_check is not None, f"{path.name}: one task check, not tables of names"
        assert not recipe.parity.tolerances, f"{path.name}: per-name tolerance tables"


def passed_report(refused: bool) -> dict:
    recipe = load_recipe(default_recipe_dirs()[-1] / ("minilm.toml" if refused else "ppocr-det.toml"))
    report = Report.start(recipe, {"python": "3.11"})
    report.packages.append({"variant": "l6", "backend": "onnx", "zip": "x.zip", "size": 1, "md5": "0" * 32,
                            "sha256": "0" * 64, "files": []})  # fmt: skip
    report.add_parity("l6", "onnx", "cpu", compare_output("y", np.ones(3), np.ones(3), 1e-5, 0.0))
    return report.to_dict()


def test_every_pack_output_says_the_consumer_cannot_load_a_declared_package(monkeypatch, tmp_path) -> None:
    data = passed_report(refused=True)
    assert data["passed"] and data["consumer"]["loads"] is False  # report.json
    as_json = summary.as_json(data, tmp_path)
    assert as_json["verdict"] == f"checks passed; {CANNOT_LOAD}" and as_json["consumer"]["loads"] is False
    markdown = render_markdown(data)
    assert markdown.splitlines()[0] == f"# weightpack report: minilm — checks passed; {CANNOT_LOAD}"
    assert "ships no class for all-MiniLM" in markdown and "— PASSED" not in markdown
    buffer = io.StringIO()
    monkeypatch.setattr("rich.console.Console", lambda **kw: Console(file=buffer, width=200))
    summary.print_table(data, tmp_path)
    text = buffer.getvalue()
    assert f"minilm: checks passed; {CANNOT_LOAD}" in text and "PASSED" not in text
    assert f"{CANNOT_LOAD}: inference-models 0.39.6 ships no class" in text


def test_a_consumer_family_still_says_passed() -> None:
    data = passed_report(refused=False)
    assert data["consumer"] == {"loads": True, "reason": ""}
    assert render_markdown(data).splitlines()[0] == "# weightpack report: ppocr-det — PASSED"


BASE = """
[family]
architecture = "net"
task = "object-detection"
[variants.v1]
source = "x.onnx"
[inputs]
kind = "tensor"
tensors = [{ name = "x", shape = [1, 3], dtype = "float32" }]
[backends.onnx]
"""


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("[consumer]\nloads = false\n", r"'consumer\.reason': is required with loads = false"),
        ("[consumer]\nloads = 'no'\n", r"'consumer\.loads': has type str.*bool"),
        (
            "[parity.task]\ncheck = 'boxes'\n",
            r"'parity\.task\.check': 'boxes' is not accepted.*detection, text",
        ),
        (
            "[parity.task]\ncheck = 'text'\nmin_iou = 0.5\n",
            r"'parity\.task\.min_iou': is not a known field.*max_cer",
        ),
        (
            "[parity.task]\ncheck = 'text'\niou = 0.5\n",
            r"'parity\.task\.iou': does not apply to check 'text'.*max_cer",
        ),
        (
            "[parity.task]\ncheck = 'detection'\niou = -1\n",
            r"'parity\.task\.iou': -1\.0 is below 0.*a finite number >= 0",
        ),
    ],
)
def test_bad_consumer_and_task_fields_are_refused_with_the_field_named(tmp_path, extra, match) -> None:
    path = tmp_path / "net.toml"
    path.write_text(BASE + extra)
    with pytest.raises(RecipeError, match=match):
        load_recipe(path)


def test_the_task_check_and_glob_tolerances_parse(tmp_path) -> None:
    from packager.package_check import tolerances_for

    path = tmp_path / "net.toml"
    path.write_text(BASE + '[parity.task]\ncheck = "detection"\nmin_box_iou = 0.7\n'
                    '[parity.outputs."raw.*"]\natol = 0.01\n[parity.outputs."*"]\natol = 0.5\n')  # fmt: skip
    recipe = load_recipe(path)
    assert (
        recipe.parity.task_check.kind == "detection"
        and recipe.parity.task_check.threshold("min_box_iou") == 0.7
    )
    assert recipe.parity.task_check.threshold("iou") == 0.5
    tolerance = tolerances_for(recipe, "onnx")
    assert tolerance("raw.3", "float32") == (0.01, 0.0)
    assert tolerance("result.0.xyxy", "float32") == (0.5, 0.0)
