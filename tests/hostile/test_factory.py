"""A factory runs code (issue 25): a recipe's ``[model] factory`` and a torch package's ``torch_config.json``
name what weightpack calls with keyword arguments from a file. ``os:system`` ran its command before any type
check; now only a class or a function of a model's module is called, the standard library never imported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.errors import UserModelError
from tests.hostile.helpers import pack, recipe_copy


def marker_command(marker: Path) -> str:
    return f"touch {marker}"


@pytest.mark.parametrize(
    "ref",
    [
        "os:system",
        "builtins:eval",
        "builtins:exec",
        "subprocess:run",
        "shutil:rmtree",
        "os.path:join",
        "posix:system",
    ],
)
def test_the_standard_library_is_refused_by_name_unimported(ref: str) -> None:
    from backends.factories import name_problem

    assert "standard library" in (name_problem(ref) or "")


@pytest.mark.parametrize(
    ("ref", "obj", "why"),
    [
        ("x:eval", eval, "not a class or a Python function"),
        ("x:partial", __import__("functools").partial(print), "not a class or a Python function"),
        ("x:run", __import__("subprocess").run, "a module of the standard library"),
        ("x:Popen", __import__("subprocess").Popen, "a module of the standard library"),
    ],
)
def test_what_was_imported_must_be_a_model_library_class_or_function(ref: str, obj, why: str) -> None:
    from backends.factories import factory_problem

    assert why in (factory_problem(ref, obj) or "")


@pytest.mark.parametrize(
    "ref", ["torch.nn:Linear", "tests.ownmodel.user_nets:ONet", "packager.reference.module:ModuleReference"]
)
def test_model_factories_are_accepted(ref: str) -> None:
    from backends.factories import load_factory, name_problem

    assert name_problem(ref) is None and callable(load_factory(ref))


def test_a_classmethod_of_a_model_class_is_a_factory() -> None:
    import torch

    from backends.factories import factory_problem

    class Net(torch.nn.Module):
        @classmethod
        def build(cls) -> Net:
            return cls()

    assert factory_problem("m:Net.build", Net.build) is None


def test_a_torch_package_naming_os_system_never_runs_it(tmp_path: Path) -> None:
    """A package downloaded from a registry (``pack verify-remote``) names its own factory."""
    from backends.torch.model import TorchModel

    marker = tmp_path / "pwned"
    package = tmp_path / "package"
    package.mkdir()
    (package / "model.safetensors").write_bytes(b"\0" * 16)
    config = {"factory": "os:system", "factory_kwargs": {"command": marker_command(marker)}}
    (package / "torch_config.json").write_text(json.dumps(config))
    with pytest.raises(UserModelError, match=r"factory 'os:system' names the standard library's os"):
        TorchModel.from_pretrained(package)
    assert not marker.exists()


@pytest.mark.slow
def test_a_recipe_factory_of_os_system_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = f'\n[model]\nfactory = "os:system"\nkwargs = {{ command = "{marker_command(marker)}" }}\n'
    folder = recipe_copy(tmp_path, lambda t: t + model)
    proc = pack("minilm", "--recipes", str(folder), "--backends", "onnx", "--no-latency",
                "--out", str(tmp_path / "out"), timeout=300)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    err = " ".join(proc.stderr.split())  # the terminal wraps long lines
    for needle in ("field 'model.factory'", "standard library", "accepted: a class or a function"):
        assert needle in err, err[-3000:]
    assert not marker.exists()
