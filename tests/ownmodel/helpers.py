"""Run ``pack`` on a recipe written by a test: in this process (what the run decides and reports), or as a
user would from a shell (a child process, for what only a process shows)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.backends.helpers import mtcnn_dir
from tests.packs import ROOT, pack_in_process, pack_process

DATA = mtcnn_dir()
ONET_PT = DATA / "onet.pt" if DATA else None
ONET_INPUTS = (
    '[variants.onet.inputs]\nkind = "tensor"\n'
    'tensors = [{ name = "image", shape = [4, 3, 48, 48], dtype = "float32", low = -1.0, high = 1.0 }]\n'
)


@dataclass
class PackRun:
    rc: int
    stdout: str
    stderr: str
    out: Path

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)

    @property
    def messages(self) -> str:
        """stderr plus the failure messages of the ``--json`` summary (where a quiet run says what failed)."""
        try:
            failures = self.json.get("failures") or []
        except ValueError:
            failures = []
        return "\n".join([self.stderr, *(f["message"] for f in failures)])

    @property
    def report(self) -> dict:
        return json.loads((self.out / "report.json").read_text())


def write_recipe(tmp: Path, body: str, name: str = "mine") -> Path:
    recipes = tmp / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / f"{name}.toml").write_text(body)
    return recipes


def pack(tmp: Path, body: str, *args: str, name: str = "mine", process: bool = False) -> PackRun:
    """``pack NAME --recipes TMP/recipes --out TMP/out --json ARGS`` on the recipe ``body``: called in this
    process (tests.packs.pack_in_process), or in a child process when ``process`` (a test marked slow)."""
    recipes = write_recipe(tmp, body, name)
    out = tmp / "out"
    argv = (name, "--recipes", str(recipes), "--out", str(out), "--json", *args)
    child = pack_process(*argv, paths=(ROOT / "recipes",), timeout=900) if process else None
    proc = child or pack_in_process(*argv)
    return PackRun(proc.returncode, proc.stdout, proc.stderr, out)


def onet_recipe(
    source: str, *, model: str = "", backends: str = "", parity: str = "", inputs: str = ""
) -> str:
    """A one-variant recipe for the O-net weights at ``source``."""
    return (
        '[family]\narchitecture = "my-onet"\ntask = "object-detection"\n\n'
        f'[variants.onet]\nsource = "{source}"\n\n'
        f"{inputs or ONET_INPUTS}\n{model}\n"
        f"{backends or '[backends.onnx]'}\n{parity}\n"
        "[bench]\nbatch_sizes = [1]\nmin_iters = 5\nmin_time_s = 0.0\nmax_time_s = 0.5\n"
    )


USER_MODEL = (
    '[model]\nfactory = "tests.ownmodel.user_nets:ONet"\n'
    'output_names = ["boxes_reg", "landmarks", "face_prob"]\n'
)


def identity_onnx(path: Path) -> Path:
    """A one-node ONNX graph (``x`` -> Identity -> ``y``, float32 [1, 2]) saved at ``path``."""
    import onnx
    from onnx import helper

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path
