"""Issue 23, points 2 to 5: inputs real models take (0-d numbers and constants, a batch axis other than 0,
declared state checked over a sequence, hidden state reset), exports that fall back honestly, and batch
sizes verified as written with labels that carry the full shape."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from packager.errors import RecipeError
from packager.inputs import parity_inputs, sequence_feeds
from packager.recipes import load_recipe
from tests.ownmodel.helpers import ROOT, identity_onnx, pack, write_recipe

SILERO = importlib.util.find_spec("silero_vad")
needs_silero = pytest.mark.skipif(SILERO is None, reason="silero-vad (scripts/setup.sh) is not installed")

HEAD = '[family]\narchitecture = "tiny-vad"\ntask = "voice-activity-detection"\n\n'
BENCH = "[bench]\nbatch_sizes = [1]\nmin_iters = 5\nmin_time_s = 0.0\nmax_time_s = 0.3\n"
STATE_INPUTS = (
    'kind = "tensor"\nsteps = 8\ntensors = [\n'
    '  { name = "x", shape = [1, 64], low = -1.0, high = 1.0 },\n'
    '  { name = "state", shape = [2, 1, 16], batch_axis = 1, state_from = "stateN" },\n'
    '  { name = "sr", value = 16000 },\n]\n'
)


def _recipe(tmp: Path, inputs: str, extra: str = "") -> Path:
    body = f'{HEAD}[variants.v1]\nsource = "/nowhere/w.pt"\n\n[variants.v1.inputs]\n{inputs}\n{extra}\n'
    return write_recipe(tmp, body + "[backends.onnx]\n") / "mine.toml"


def test_constants_zero_d_inputs_batch_axes_and_state_parse(tmp_path: Path) -> None:
    spec = load_recipe(_recipe(tmp_path, STATE_INPUTS)).inputs_for("v1")
    _, state, sr = spec.tensors
    assert (sr.value, sr.dtype, sr.shape, sr.batch_axis) == (16000, "int64", [], None)
    assert (state.batch_axis, state.state_from, state.initial) == (1, "stateN", "zeros")
    assert spec.steps == 8 and spec.state == {"state": "stateN"}
    feed = parity_inputs(spec, tmp_path)
    assert feed["sr"].shape == () and feed["sr"].dtype == np.int64 and int(feed["sr"]) == 16000
    assert feed["state"].shape == (2, 1, 16) and not feed["state"].any()
    assert spec.tensors_label(3) == "x 3x64, state 2x3x16, sr=16000"
    feeds = sequence_feeds(spec, tmp_path, 1)
    assert len(feeds) == 8 and "state" in feeds[0] and all("state" not in f for f in feeds[1:])
    assert not np.array_equal(feeds[0]["x"], feeds[1]["x"])  # each step its own draw
    scalar = 'kind = "tensor"\ntensors = [{ name = "t", shape = [], low = 0.0, high = 1.0 }]\n'
    t = load_recipe(_recipe(tmp_path, scalar)).inputs_for("v1").tensors[0]
    assert t.shape == [] and t.batch_axis is None


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        (STATE_INPUTS.replace("steps = 8", "steps = 3"), r"inputs.steps.*3 steps.*8..10000"),
        (STATE_INPUTS.replace("steps = 8", "steps = 1"), r"inputs.steps.*state inputs \['state'\] need"),
        (STATE_INPUTS.replace("batch_axis = 1", "batch_axis = 3"), r"batch_axis.*3 is not an axis of a"),
        (STATE_INPUTS.replace("value = 16000", "value = 16000, batch_axis = 0"), r"a constant has no batch"),
        (STATE_INPUTS.replace("value = 16000", 'value = "16k"'), r"tensors\[2\].value.*has type str"),
        (STATE_INPUTS.replace('initial = "zeros"', "").replace("state_from", 'initial = "ones", state_from'),
         r"initial.*'ones' is not accepted.*zeros, random"),
    ],
)  # fmt: skip
def test_bad_signatures_name_the_field(tmp_path: Path, inputs: str, match: str) -> None:
    with pytest.raises(RecipeError, match=match):
        load_recipe(_recipe(tmp_path, inputs))


def test_batch_one_is_checked_at_one_and_a_second_sample_says_why(tmp_path: Path) -> None:
    """A ``[1, 2]`` shape was run at batch 2 (``max(2, shape[0])``): a batch-1 graph could not be packaged,
    and the batch that was asked for was never checked."""
    src = tmp_path / "src"
    src.mkdir()
    identity_onnx(src / "fixed.onnx")  # batch fixed at 1: no second sample is possible
    inputs = 'kind = "tensor"\ntensors = [{ name = "x", shapes = [[1, 2], [1, 2]] }]\n'
    body = f'{HEAD}[variants.v1]\nsource = "{src / "fixed.onnx"}"\n\n[variants.v1.inputs]\n{inputs}\n'
    run = pack(tmp_path, body + "[backends.onnx]\n" + BENCH)
    assert run.rc == 0, run.messages[-3000:]
    assert {p["input_shape"] for p in run.report["parity"]} == {"x 1x2"}
    assert [r["input_shape"] for r in run.report["latency"]] == ["x 1x2"]  # timed once, labelled in full


def test_a_recurrent_module_with_state_on_axis_1_exports_and_is_checked_per_step(tmp_path: Path) -> None:
    import torch

    from tests.ownmodel.user_nets import TinyVAD

    torch.manual_seed(0)
    torch.save(TinyVAD().state_dict(), tmp_path / "tiny.pt")
    body = (
        f'{HEAD}[variants.v1]\nsource = "{tmp_path / "tiny.pt"}"\n\n[variants.v1.inputs]\n{STATE_INPUTS}\n'
        '[model]\nfactory = "tests.ownmodel.user_nets:TinyVAD"\noutput_names = ["prob", "stateN"]\n'
        f"[backends.onnx]\n[backends.torch]\n{BENCH}"
    )
    run = pack(tmp_path, body)
    assert run.rc == 0, run.messages[-3000:]
    rows = [p for p in run.report["parity"] if "second sample" not in p.get("input_shape", "")]
    assert {(p["backend"], p["output"]) for p in rows} == {
        (b, o) for b in ("onnx", "torch") for o in ("prob", "stateN")
    }
    assert all(p["passed"] and p["steps"] == 8 for p in run.report["parity"])
    proof = {p.get("input_shape") for p in run.report["parity"]} - {None}
    assert proof == {"x 2x64, state 2x2x16, sr=16000 (a second sample: the batch axis is dynamic)"}
    import onnxruntime

    from packager.archive import safe_extract

    safe_extract(run.out / "tiny-vad-v1-onnx.zip", tmp_path / "x")
    graph = onnxruntime.InferenceSession(str(tmp_path / "x" / "weights.onnx"))
    assert {i.name: i.shape for i in graph.get_inputs()} == {
        "x": ["batch", 64],
        "state": [2, "batch", 16],
        "sr": [],
    }


def _streaming_jit(path: Path, reset: bool = True) -> Path:
    import torch

    from tests.ownmodel.user_nets import TinyStreamingVAD

    torch.manual_seed(0)
    scripted = torch.jit.script(TinyStreamingVAD().eval())
    torch.jit.save(scripted, str(path))
    return path


def test_hidden_state_is_reset_between_reference_and_package(tmp_path: Path) -> None:
    jit = _streaming_jit(tmp_path / "vad.jit")
    inputs = (
        'kind = "tensor"\nsteps = 8\n'
        'tensors = [{ name = "x", shape = [1, 64] }, { name = "sr", value = 16000 }]\n'
    )
    body = f'{HEAD}[variants.v1]\nsource = "{jit}"\n\n[variants.v1.inputs]\n{inputs}\n'
    body += f"[backends.torch-script]\n{BENCH}"
    run = pack(tmp_path, body, "--no-latency")
    assert run.rc == 0, run.messages[-3000:]
    assert run.report["references"]["v1"]["kind"] == "torchscript-file"
    assert all(p["passed"] and p["steps"] == 8 and p["max_abs"] == 0.0 for p in run.report["parity"])


def test_a_package_that_changes_between_identical_calls_is_reported_stateful(tmp_path: Path) -> None:
    from bench.parity import default_tolerance
    from packager.check import CheckRequest, check_outputs

    class Counter:  # a package keeping a count it was never asked to: no reset_states()
        calls = 0

        def infer(self, inputs):
            self.calls += 1
            return {"y": inputs["x"] * self.calls}

    x = np.ones((1, 2), np.float32)
    request = CheckRequest("m:C", "cpu", {"x": x}, {"y": x}, lambda o, d: default_tolerance(d, "onnx"))
    model = Counter()
    model.calls = 1  # opened and run once already, as open_package does
    result = check_outputs(model, request)
    assert not result.passed and result.stateful
    assert result.parity[0].reason.startswith("stateful: the package's outputs changed between two identical")


@pytest.mark.slow
@needs_silero
def test_silero_vad_packages_as_onnx_and_torchscript_over_8_steps(tmp_path: Path) -> None:
    """The issue's model: Silero VAD from PyPI, its .onnx (state [2, N, 128] on axis 1, sr a 0-d int64)
    and its .jit (forward(Tensor x, int sr), state kept inside)."""
    body = (ROOT / "recipes" / "silero_vad.toml").read_text()
    run = pack(tmp_path, body, "--variants", "onnx,jit", "--no-latency", name="silero_vad", process=True)
    assert run.rc == 0, run.messages[-3000:]
    report = run.report
    assert {(p["variant"], p["backend"]) for p in report["packages"]} == {
        ("onnx", "onnx"),
        ("jit", "torch-script"),
    }
    assert {p["output"] for p in report["parity"] if p["variant"] == "onnx"} == {"output", "stateN"}
    assert all(p["passed"] and p["steps"] == 8 for p in report["parity"])
    assert report["references"]["jit"]["kind"] == "torchscript-file"


@needs_silero
def test_an_export_that_fails_names_the_upstreams_own_graph(tmp_path: Path) -> None:
    """Exporting the scripted .jit to ONNX fails; the upstream ships silero_vad.onnx beside it."""
    body = (
        (ROOT / "recipes" / "silero_vad.toml")
        .read_text()
        .replace('backends = ["torch-script"]', 'backends = ["onnx"]')
    )
    run = pack(tmp_path, body, "--variants", "jit", "--no-latency", name="silero_vad")
    assert run.rc == 1, run.messages[-3000:]
    failure = next(f for f in run.report["failures"] if f["stage"] == "export")
    assert "torch.onnx.export failed" in failure["message"]
    assert "the upstream ships silero_vad.onnx beside silero_vad.jit" in failure["message"]
    assert 'source = "pkg://silero_vad/data/silero_vad.onnx"' in failure["message"]
