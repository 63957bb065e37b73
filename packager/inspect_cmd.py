"""Print a model's inputs and outputs, and the ``[inputs]`` table to paste into a recipe.

``pack inspect PATH``: PATH is an ONNX graph, a TorchScript archive, a state dict, or a transformers
snapshot: a file, a folder, or any source a recipe takes (``hf://org/repo``, ``pkg://module/path``), told
apart by what the files contain. Names, shapes (dynamic axes by name) and dtypes come from the file
itself: the graph's declared inputs, the TorchScript ``forward`` schema, the snapshot's ``config.json``. A
state dict has no signature: its tensors are listed instead.

The table is a start: shapes use 1 for a dynamic batch and the declared size elsewhere (a dynamic axis
other than the batch gets 1 too, marked), 0-d inputs become ``shape = []``, an ``int``/``float`` argument
of a TorchScript ``forward`` a constant (``value``). Set low/high to your data's range. Exit 2 when PATH
is not a model; ``--json`` prints the same as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from packager import commands, sources
from packager.errors import UsageError
from packager.reference import content

ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8",
              "tensor(bool)": "bool"}  # fmt: skip
SCRIPT_NUMBERS = {"int": ("int64", 16000), "float": ("float32", 1.0), "bool": ("bool", True)}


def signature(path: Path, files: list[str]) -> dict[str, Any]:
    """``{"kind", "file", "inputs": [{name, shape, dtype, ...}], "outputs": [...]}`` of the model in
    ``path`` (a folder holding ``files``)."""
    kinds = content.classify(path, files)
    for kind, reader in ((content.ONNX, _onnx), (content.TORCHSCRIPT, _torchscript)):
        found = sorted(f for f, k in kinds.items() if k == kind)
        if found:
            return {"kind": kind, "file": found[0], **reader(path / found[0])}
    if content.HF_CONFIG in kinds:
        return {"kind": "transformers", "file": content.HF_CONFIG, **_hf(path)}
    tensors = sorted(f for f, k in kinds.items() if k in content.STATE_DICT_KINDS)
    if tensors:
        return {"kind": "state-dict", "file": tensors[0], **_state_dict(path / tensors[0])}
    raise UsageError(f"pack inspect: {path} {content.unrecognised(kinds)}")


def _onnx(file: Path) -> dict[str, Any]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])

    def io(items: Any) -> list[dict[str, Any]]:
        return [
            {"name": i.name, "shape": list(i.shape), "dtype": ORT_DTYPES.get(i.type, i.type)} for i in items
        ]

    return {"inputs": io(session.get_inputs()), "outputs": io(session.get_outputs())}


def _torchscript(file: Path) -> dict[str, Any]:
    import torch

    module = torch.jit.load(str(file), map_location="cpu")
    schema = module.forward.schema
    inputs = []
    for arg in list(schema.arguments)[1:]:
        kind = str(arg.type)
        if kind in SCRIPT_NUMBERS:
            inputs.append({"name": arg.name, "shape": [], "dtype": SCRIPT_NUMBERS[kind][0], "number": kind})
        else:
            inputs.append({"name": arg.name, "shape": None, "dtype": "float32", "type": kind})
    outputs = [{"name": f"output_{i}", "type": str(r.type)} for i, r in enumerate(schema.returns)]
    return {"inputs": inputs, "outputs": outputs, "methods": sorted(module._c._method_names())}


def _hf(path: Path) -> dict[str, Any]:
    config = json.loads((path / content.HF_CONFIG).read_text(encoding="utf-8"))
    if "vocab_size" in config or "max_position_embeddings" in config:  # a text model: token ids in
        names = ["input_ids", "attention_mask"] + (
            ["token_type_ids"] if config.get("type_vocab_size") else []
        )
        length = "sequence"
        inputs = [{"name": n, "shape": ["batch", length], "dtype": "int64"} for n in names]
    else:
        size = config.get("image_size", 224)
        channels = config.get("num_channels", 3)
        inputs = [{"name": "pixel_values", "shape": ["batch", channels, size, size], "dtype": "float32"}]
    hidden = config.get("hidden_size")
    outputs = [{"name": "last_hidden_state", "shape": ["batch", "sequence", hidden], "dtype": "float32"}]
    return {"inputs": inputs, "outputs": outputs, "architectures": config.get("architectures") or []}


def _state_dict(file: Path) -> dict[str, Any]:
    from packager.reference.module import load_state_dict

    state = load_state_dict(file, None)
    tensors = [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
               for k, v in list(state.items())[:40]]  # fmt: skip
    return {"inputs": [], "outputs": [], "tensors": tensors, "tensor_count": len(state)}


def inputs_table(sig: dict[str, Any]) -> str:
    """The ``[inputs]`` table for a recipe, from :func:`signature`."""
    if sig["kind"] == "transformers" and sig["inputs"] and sig["inputs"][0]["dtype"] == "int64":
        return (
            '[inputs]\nkind = "text"\nmax_length = 128\ntexts = ["a first sample sentence", "a second one"]\n'
        )
    if not sig["inputs"]:
        return "# a state dict has no signature: write [inputs] for your module's forward\n"
    lines = ["[inputs]", 'kind = "tensor"', "tensors = ["]
    for entry in sig["inputs"]:
        fields, note = _tensor_fields(entry, sig["outputs"])
        lines.append("  { " + ", ".join(fields) + " }," + (f"  # {note}" if note else ""))
    if any("state_from" in line for line in lines):
        lines.insert(2, "steps = 8  # the state is checked over a sequence of calls")
    return "\n".join([*lines, "]"]) + "\n"


STATE_WORDS = ("state", "hidden", "cache", "h0", "c0")


def _tensor_fields(entry: dict[str, Any], outputs: list[dict[str, Any]]) -> tuple[list[str], str]:
    """One tensor's fields and a comment on what to check."""
    name, shape, dtype = entry["name"], entry["shape"], entry["dtype"]
    if entry.get("number"):
        example = SCRIPT_NUMBERS[entry["number"]][1]
        return [f'name = "{name}"', f"value = {example}"], f"forward takes {entry['number']}: your constant"
    if shape is None:
        return [f'name = "{name}"', "shape = [1]", f'dtype = "{dtype}"'], f"a {entry.get('type')}: its shape?"
    if not shape:
        return [f'name = "{name}"', "shape = []", f'dtype = "{dtype}"'], "0-d: a constant? use value = N"
    dynamic = [i for i, d in enumerate(shape) if not isinstance(d, int) or d <= 0]
    batch = dynamic[0] if dynamic else None
    sizes = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
    fields = [f'name = "{name}"', f"shape = {sizes}", f'dtype = "{dtype}"']
    if batch != 0:
        fields.append(f"batch_axis = {batch}" if batch is not None else 'batch_axis = "none"')
    notes = [f"axis {i} is dynamic: set its size" for i in dynamic if i != batch]
    feeds = [o["name"] for o in outputs if len(o.get("shape") or []) == len(shape) and o["name"] != name]
    if feeds and any(word in name.lower() for word in STATE_WORDS):
        fields.append(f'state_from = "{feeds[-1]}"')
        notes.append("a state input: fed by that output at the next step?")
    return fields, "; ".join(notes)


def render(sig: dict[str, Any]) -> str:
    def row(e: dict[str, Any]) -> str:
        dims = e.get("shape")
        shape = "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]" if dims is not None else ""
        return f"  {e['name']:<24} {shape or e.get('type', '?'):<28} {e.get('dtype', '')}"

    parts = [f"{sig['kind']}: {sig['file']}", "inputs:", *map(row, sig["inputs"])]
    parts += ["outputs:", *map(row, sig["outputs"])]
    if sig.get("tensors"):
        parts += [f"tensors ({sig['tensor_count']}):", *map(row, sig["tensors"])]
    return "\n".join(parts) + "\n\n# paste into your recipe:\n" + inputs_table(sig)


def main(argv: list[str]) -> int:
    parser = commands.verb_parser("inspect", __doc__)
    parser.add_argument("path", help="a file, a folder, or a source URI (hf://, pkg://, https://, gs://)")
    parser.add_argument("--json", action="store_true", help="print the signature and the table as JSON")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where remote sources are fetched")
    args = parser.parse_args(argv)
    from packager.cli import default_cache_dir

    cache = args.cache_dir or default_cache_dir()
    fetched = sources.fetch(args.path, cache_dir=cache)
    sig = signature(fetched.path, fetched.files)
    if args.json:
        print(json.dumps({**sig, "inputs_table": inputs_table(sig)}, indent=2))
    else:
        sys.stdout.write(render(sig))
    return 0
