"""Check every TensorRT name weightpack uses against the real Python bindings of each supported major,
with no GPU and no TensorRT libraries. Outside CI (it downloads the bindings, ~1.3 MB a major); run it after
changing code that uses ``tensorrt`` (backends/trt, bench/environment.py), before raising the TensorRT pin,
and when NVIDIA releases a new major or minor (docs/backends.md, "TensorRT API check").

    python3 scripts/check_trt_api.py                    # TensorRT 10.16.1.11 and 11.4.0.106
    python3 scripts/check_trt_api.py --trt 10=10.13.3.9 --keep

How, per major: ``tensorrt-cu13-bindings==V`` goes into a throwaway venv under ``out/trt-api-check/``
(removed afterwards unless ``--keep``). Its extension links ``libnvinfer``, ``libnvinfer_plugin`` and
``libnvonnxparser``, which are not on PyPI as wheels, so stub libraries defining the few symbols it imports
(``nm -D``: ``createInferBuilder_INTERNAL``, ...) are compiled with ``cc``; with them the real module imports
and its classes, enums and pybind11 signatures are read (nothing that needs a GPU is called). The code is
scanned (AST) for ``trt.X.Y`` chains, for methods and properties of values whose class follows from those
signatures (``builder.create_network()`` returns ``INetworkDefinition``), and for the callbacks of classes
derived from TensorRT's (``IOutputAllocator``: pybind11 finds them by name, which the extension holds as
strings). Names read through ``hasattr``/``getattr(..., default)`` are optional: reported, never missing.
Exit 1 when a required name is missing from a major.
"""

from __future__ import annotations

import argparse
import ast
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
VERSIONS = {10: "10.16.1.11", 11: "11.4.0.106"}  # the newest release of each major on PyPI
SCANNED = ("backends", "bench", "packager", "scripts")
# Values whose class cannot follow from a signature (passed between our own functions): file, function,
# expression -> TensorRT class. Printed with the report.
HINTS = {
    ("backends/trt/model.py", "*", "self.engine"): "ICudaEngine",
    ("backends/trt/model.py", "*", "self.context"): "IExecutionContext",
    ("backends/trt/engine.py", "execution_context", "engine"): "ICudaEngine",
}
SURFACE = r"""
import json, sys
try:
    import tensorrt as trt
except ImportError:
    import tensorrt_bindings as trt
import re
out = {"version": trt.__version__, "module": sorted(dir(trt)), "classes": {}, "enums": {}}
for name in dir(trt):
    obj = getattr(trt, name)
    if not isinstance(obj, type):
        continue
    members = {}
    for m in dir(obj):
        try:
            doc = getattr(getattr(obj, m), "__doc__", None) or ""
        except Exception:
            doc = ""
        found = re.search(r"\)\s*->\s*([\w.]+)", doc.split("\n", 2)[0] if doc else "")
        members[m] = found.group(1).rsplit(".", 1)[-1] if found else None
    out["classes"][name] = members
    if hasattr(obj, "__members__"):
        out["enums"][name] = sorted(obj.__members__)
json.dump(out, sys.stdout)
"""


@dataclass
class Use:
    """Names the code reads from TensorRT, with where."""

    chains: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    optional: set[tuple[str, ...]] = field(default_factory=set)
    members: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    callbacks: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)


def _chain(node: ast.AST, refs: set[str]) -> tuple[str, ...] | None:
    """``trt.A.B`` -> ("A", "B") when the base names the tensorrt module (a name of ``refs``, ``._trt``)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        if node.attr == "_trt":
            return tuple(reversed(parts))
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in refs and parts:
        return tuple(reversed(parts))
    return None


def _expr(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def _module_refs(tree: ast.AST) -> set[str]:
    """Names bound to the tensorrt module in a file: ``import tensorrt [as x]``, ``x = require("tensorrt",
    ...)``, and parameters named ``trt``."""
    refs = {"trt"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            refs |= {a.asname or a.name for a in node.names if a.name == "tensorrt"}
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            call = node.value
            if getattr(call.func, "id", None) == "require" and call.args:
                first = call.args[0]
                if isinstance(first, ast.Constant) and first.value == "tensorrt":
                    refs |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return refs


def uses_tensorrt(text: str) -> bool:
    return bool(re.search(r"\bimport tensorrt\b|require\(\"tensorrt\"|\btrt\.|\._trt\b|\(trt[,:)]", text))


def scan(files: list[Path], surface: dict[str, Any]) -> Use:
    """What ``files`` read from TensorRT, the classes of typed values resolved with ``surface``."""
    use = Use()
    for path in files:
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        tree = ast.parse(path.read_text())
        refs = _module_refs(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("hasattr", "getattr"):
                optional = node.func.id == "hasattr" or len(node.args) == 3
                first = node.args[0] if node.args else None
                base = () if isinstance(first, ast.Name) and first.id in refs else _chain(first, refs)
                name = node.args[1] if len(node.args) > 1 else None
                if (
                    optional
                    and base is not None
                    and isinstance(name, ast.Constant)
                    and isinstance(name.value, str)
                ):
                    use.optional.add((*base, name.value))
            chain = _chain(node, refs) if isinstance(node, ast.Attribute) else None
            if chain:
                use.chains.setdefault(chain, []).append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    parent = _chain(base, refs)
                    for item in node.body if parent else []:
                        if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                            key = (parent[-1], item.name)
                            use.callbacks.setdefault(key, []).append(f"{rel}:{item.lineno}")
        for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
            _scan_function(func, rel, refs, surface, use)
    return use


def _scan_function(func: ast.AST, rel: str, refs: set[str], surface: dict[str, Any], use: Use) -> None:
    types: dict[str, str] = {
        expr: cls for (file, fn, expr), cls in HINTS.items() if file == rel and fn in ("*", func.name)
    }
    assigns = [n for n in ast.walk(func) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)]
    for _ in range(4):  # a few passes: a value typed from another typed value
        for node in assigns:
            cls = _call_type(node.value, refs, types, surface)
            for target in node.targets:
                if cls and _expr(target):
                    types[_expr(target)] = cls
    for node in ast.walk(func):
        if not isinstance(node, ast.Attribute):
            continue
        owner = _expr(node.value)
        cls = types.get(owner) if owner else None
        if cls is None and isinstance(node.value, ast.Call):  # network.get_output(i).name
            cls = _call_type(node.value, refs, types, surface)
        if cls:
            use.members.setdefault((cls, node.attr), []).append(f"{rel}:{node.lineno}")


def _call_type(call: ast.Call, refs: set[str], types: dict[str, str], surface: dict[str, Any]) -> str | None:
    chain = _chain(call.func, refs)
    if chain and len(chain) == 1 and chain[0] in surface["classes"]:
        return chain[0]
    if isinstance(call.func, ast.Attribute):
        owner = _expr(call.func.value)
        if owner in types:
            returned = surface["classes"].get(types[owner], {}).get(call.func.attr)
            return returned if returned in surface["classes"] else None
    return None


def tensorrt_files() -> list[Path]:
    files = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name != "check_trt_api.py" and uses_tensorrt(path.read_text()):
                files.append(path)
    return files


# ---- the bindings, installed and stubbed --------------------------------------------------------------


def install_bindings(version: str, work: Path) -> tuple[Path, Path]:
    """A venv at ``work`` holding tensorrt-cu13-bindings ``version``: (its python, the extension)."""
    venv.create(work, with_pip=False, clear=True)
    python = work / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    done = subprocess.run([*pip, f"tensorrt-cu13-bindings=={version}"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pip could not install tensorrt-cu13-bindings=={version}:\n{done.stderr[-2000:]}")
    found = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('tensorrt_bindings').origin)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return python, Path(found).parent / "tensorrt.so"


def stub_libraries(extension: Path, folder: Path) -> list[str]:
    """Compile stand-ins for the TensorRT libraries ``extension`` links (each defining every symbol it
    imports that this interpreter does not provide); return their sonames."""
    from backends.onnx.libs import elf_needed

    needed = [s for s in elf_needed(extension) if s.startswith("libnv")]
    listing = subprocess.run(
        ["nm", "-D", "--undefined-only", str(extension)], capture_output=True, text=True, check=True
    ).stdout
    here = ctypes.CDLL(None)
    symbols = []
    for line in listing.splitlines():
        kind, _, name = line.strip().partition(" ")
        if kind == "U" and "@" not in name and not hasattr(here, name):
            symbols.append(name)
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "stub.c"
    source.write_text("".join(f"void *{name}(void) {{ return 0; }}\n" for name in symbols))
    for soname in needed:
        subprocess.run(
            ["cc", "-shared", "-fPIC", "-o", str(folder / soname), str(source), f"-Wl,-soname,{soname}"],
            check=True,
        )
    return needed


def read_surface(python: Path, stubs: Path) -> dict[str, Any]:
    env = {**os.environ, "LD_LIBRARY_PATH": str(stubs)}
    done = subprocess.run([str(python), "-c", SURFACE], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


# ---- the report ------------------------------------------------------------------------------------------


def _has(surface: dict[str, Any], chain: tuple[str, ...]) -> bool:
    if chain[0] not in surface["module"]:
        return False
    if len(chain) == 1:
        return True
    members = surface["classes"].get(chain[0])
    return members is not None and chain[1] in members and len(chain) == 2


def report(major: int, surface: dict[str, Any], stubs: list[str], use: Use, extension: Path) -> list[str]:
    """Lines of the report for one major; a line starting with ``MISSING`` fails the check."""
    from backends.trt.dtypes import PACKED, TORCH_DTYPES
    from backends.trt.precision import SUPPORTED_MAJORS

    lines = [f"TensorRT {surface['version']} (tensorrt-cu13-bindings; stubbed {', '.join(stubs)})"]
    optional = {c for c in use.optional}
    required = {c: w for c, w in use.chains.items() if c not in optional and c[:-1] not in optional}
    present = [c for c in required if _has(surface, c)]
    missing = [f"trt.{'.'.join(c)} ({required[c][0]})" for c in required if c not in present]
    lines.append(f"  module names and enum values: {len(required)} used, {len(present)} present")
    member_missing = [
        f"{cls}.{attr} ({where[0]})"
        for (cls, attr), where in sorted(use.members.items())
        if attr not in surface["classes"].get(cls, {}) and (cls, attr) not in optional
    ]
    lines.append(
        f"  methods and properties of typed values: {len(use.members)} used on "
        f"{len({c for c, _ in use.members})} classes, {len(use.members) - len(member_missing)} present"
    )
    blob = extension.read_bytes()
    callbacks = [f"{cls}.{name}" for cls, name in sorted(use.callbacks)]
    absent_cb = [
        f"{cls}.{name} ({where[0]})"
        for (cls, name), where in sorted(use.callbacks.items())
        if f"\0{name}\0".encode() not in blob
    ]
    lines.append(f"  callbacks overridden in Python: {', '.join(callbacks) or 'none'}: "
                 f"{'all named in the extension' if not absent_cb else 'some absent'}")  # fmt: skip
    opt = sorted(optional)
    lines.append(
        "  optional (hasattr/getattr): "
        + ", ".join(f"{'.'.join(c)} {'present' if _has(surface, c) else 'absent'}" for c in opt)
    )
    members = set(surface["enums"].get("DataType", []))
    known = set(TORCH_DTYPES) | set(PACKED)
    unmapped = sorted(members - known)
    stale = sorted(known - members)
    lines.append(
        f"  DataType: {len(members)} members; mapped to torch: {len(members & set(TORCH_DTYPES))}, "
        f"refused as packed: {', '.join(sorted(members & set(PACKED))) or 'none'}"
        + (f", NOT HANDLED: {', '.join(unmapped)}" if unmapped else "")
        + (f"; table names absent here: {', '.join(stale)}" if stale else "")
    )
    if major not in SUPPORTED_MAJORS:
        missing.append(f"major {major} is not in backends/trt/precision.py SUPPORTED_MAJORS")
    missing += member_missing + absent_cb + [f"DataType.{n} has no torch dtype" for n in unmapped]
    lines.append("  MISSING: " + ("; ".join(missing) if missing else "none"))
    return lines


def details(surface: dict[str, Any], use: Use) -> list[str]:
    """One line per name checked: present or absent, and the first place it is used."""
    out = []
    for chain, where in sorted(use.chains.items()):
        out.append(f"    trt.{'.'.join(chain)}: {'ok' if _has(surface, chain) else 'ABSENT'} ({where[0]})")
    for (cls, attr), where in sorted(use.members.items()):
        ok = attr in surface["classes"].get(cls, {})
        out.append(f"    {cls}.{attr}: {'ok' if ok else 'ABSENT'} ({where[0]})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trt", action="append", default=[], metavar="MAJOR=VERSION", help="bindings to use")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "trt-api-check")
    parser.add_argument("--keep", action="store_true", help="keep the venvs and stubs")
    parser.add_argument("--verbose", action="store_true", help="list every name checked, with where")
    args = parser.parse_args(argv)
    versions = dict(VERSIONS)
    for item in args.trt:
        major, _, version = item.partition("=")
        versions[int(major)] = version
    for tool in ("cc", "nm"):
        if shutil.which(tool) is None:
            parser.error(f"needs '{tool}' (a C compiler and binutils) to stub TensorRT's libraries")
    files = tensorrt_files()
    print(f"scanned: {', '.join(p.relative_to(ROOT).as_posix() for p in files)}")
    print("assumed types: " + ", ".join(f"{f}:{e} = {c}" for (f, _, e), c in HINTS.items()))
    failed = False
    try:
        for major, version in sorted(versions.items()):
            work = args.work / f"trt{major}"
            python, extension = install_bindings(version, work / "venv")
            stubs = stub_libraries(extension, work / "stubs")
            surface = read_surface(python, work / "stubs")
            use = scan(files, surface)
            lines = report(major, surface, stubs, use, extension)
            failed |= not lines[-1].endswith("none")
            print("\n".join(lines))
            if args.verbose:
                print("\n".join(details(surface, use)))
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
