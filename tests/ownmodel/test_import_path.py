"""Issue 20, point 4: a recipe's own modules import from the recipe's folder and from the working
directory, as docs/your-own-model.md says, with no PYTHONPATH set: ``pack`` is run as a user runs it (the
console script, whose sys.path holds neither folder)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from tests.packs import pack_process

NET = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


def build():
    return Tiny()
"""

RECIPE = """
[family]
architecture = "tiny"
task = "embedding"

[variants.v1]
source = "{source}"

[inputs]
kind = "tensor"
tensors = [{{ name = "x", shape = [2, 4], dtype = "float32" }}]

[model]
factory = "{module}:build"
output_names = ["y"]

[backends.torch]
"""


def _weights(folder: Path, module: str) -> Path:
    """A state dict of the user's net, saved by the net's own module (loaded from its file in ``folder``,
    not imported: nothing of it stays in this process's modules)."""
    import torch

    spec = importlib.util.spec_from_file_location(module, folder / f"{module}.py")
    assert spec is not None and spec.loader is not None
    net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(net)
    torch.save(net.build().state_dict(), folder / "tiny.pt")
    return folder / "tiny.pt"


def _pack(cwd: Path, recipes: Path, tmp: Path) -> subprocess.CompletedProcess:
    """``pack tiny`` through the console script: its sys.path starts at the venv's bin folder, so neither the
    recipe's folder nor the working directory is importable unless pack makes them so. PYTHONPATH names only
    weightpack's own checkout (where the caller's environment already points it)."""
    return pack_process(
        "tiny", "--recipes", str(recipes), "--out", str(tmp / "out"), "--no-latency", "--json",
        cwd=cwd, script=True,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("where", ["recipe folder", "working directory"])
def test_the_recipes_module_imports_without_pythonpath(tmp_path: Path, where: str) -> None:
    recipes, cwd = tmp_path / "recipes", tmp_path / "work"
    recipes.mkdir()
    cwd.mkdir()
    home = recipes if where == "recipe folder" else cwd
    module = "wp_tiny_net_" + where.split()[0]
    (home / f"{module}.py").write_text(NET)
    (recipes / "tiny.toml").write_text(RECIPE.format(source=_weights(home, module), module=module))
    proc = _pack(cwd, recipes, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["passed"] is True, proc.stdout[-2000:]
