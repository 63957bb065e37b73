"""The structure docs/architecture.md promises, held by tests: who may import whom, module size, and no
backend name spelled outside its own folder (everything else reads the backend's ``BackendSpec``)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.registry import BACKENDS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("packager", "backends", "bench")
MAX_LINES = 400
ALLOWED_IMPORTS = {"packager": {"packager", "bench", "backends"}, "bench": {"bench", "backends"}}
ALLOWED_IMPORTS["backends"] = {"backends"}
SPELLED_ON_PURPOSE = {
    # the hf:// source scheme, which happens to share the hf backend's name
    ("packager/sources/__init__.py", "hf"),
    ("packager/sources/spec.py", "hf"),
    # the torch library (is it imported yet?), which happens to share the torch backend's name
    ("bench/threads.py", "torch"),
    ("bench/environment.py", "torch"),
    # the consumer's own BackendType value (inference_models' vocabulary, read off its parsed manifest)
    ("packager/consumer/probe.py", "trt"),
    # generated integration tests cannot import weightpack: they vendor a stand-in for one model class
    ("packager/fixtures/templates.py", "onnx"),
}


def modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """Top-level packages of weightpack that ``path`` imports anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.add(path.relative_to(ROOT).parts[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_run_one_way(package: str) -> None:
    """packager -> bench -> backends; nothing runs back up (docs/architecture.md, "Who may import whom")."""
    wrong = {
        path.relative_to(ROOT).as_posix(): sorted(imported_packages(path) - ALLOWED_IMPORTS[package])
        for path in modules(package)
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_no_module_is_a_god_module() -> None:
    sizes = {
        p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
        for pkg in PACKAGES
        for p in modules(pkg)
    }
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


def backend_names() -> set[str]:
    return {name for spec in BACKENDS.values() for name in spec.names}


def spelled_names(path: Path, names: set[str]) -> set[str]:
    """Backend names used as values to branch on: compared with (``== "onnx"``, ``in ("torch", ...)``) or
    keyed by (``{"onnx": ...}``)."""
    found = set()

    def literals(node: ast.AST) -> Iterator[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            for element in node.elts:
                yield from literals(element)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                found |= set(literals(operand)) & names
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                if key is not None:
                    found |= set(literals(key)) & names
    return found


@pytest.mark.parametrize("package", ["packager", "bench"])
def test_no_backend_name_is_spelled_outside_its_folder(package: str) -> None:
    names = backend_names()
    spelled = {
        (path.relative_to(ROOT).as_posix(), name)
        for path in modules(package)
        for name in spelled_names(path, names)
    }
    assert spelled - SPELLED_ON_PURPOSE == set()


def test_the_name_check_finds_a_spelled_name(tmp_path: Path) -> None:
    """The check above can fail: a branch on a backend's name is found."""
    source = tmp_path / "m.py"
    source.write_text('def f(b):\n    return b == "onnx" or b in ("torch", "x") or {"trt": 1}\n')
    assert spelled_names(source, backend_names()) == {"onnx", "torch", "trt"}


TEMP_CALLS = {"TemporaryDirectory", "mkdtemp", "mkstemp", "NamedTemporaryFile", "TemporaryFile"}


def temporaries_without_a_folder(path: Path) -> list[int]:
    """Lines where ``tempfile`` makes a temporary without ``dir=``: in the system's /tmp, where nothing
    sweeps what a killed run leaves (weightpack's own live under the output folder: packager.atomic)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if (
                isinstance(owner, ast.Name)
                and owner.id == "tempfile"
                and node.func.attr in TEMP_CALLS
                and not any(k.arg == "dir" for k in node.keywords)
            ):
                lines.append(node.lineno)
    return lines


def test_no_temporary_goes_to_the_system_tmp() -> None:
    found = {
        path.relative_to(ROOT).as_posix(): temporaries_without_a_folder(path)
        for package in PACKAGES
        for path in modules(package)
    }
    assert {k: v for k, v in found.items() if v} == {}


def module_names(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``packages`` under ``root`` (a package is its
    ``__init__``)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports, at module level or inside a function: the
    module named, or the package when a name is imported from its ``__init__``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            named = [f"{base}.{alias.name}" for alias in node.names]
            targets = [module if module in known else base for module in named]
        found |= {m for m in map(owner, targets) if m and m != name}
    return found


def import_cycles(root: Path, packages: tuple[str, ...]) -> list[list[str]]:
    """Every set of modules that import each other, directly or round a loop (Tarjan's strongly
    connected components of the import graph, function-level imports included)."""
    files = module_names(root, packages)
    graph = {name: imported_modules(name, path, set(files)) for name, path in files.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return cycles


def test_no_import_circle() -> None:
    """No modules import each other, not even from inside a function (a late import hides a circle, it
    does not remove it): each module can be read, and changed, after the ones it builds on."""
    assert import_cycles(ROOT, PACKAGES) == []


def test_the_circle_check_finds_a_circle_through_a_function_level_import(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    for init in ("pkg/__init__.py", "pkg/sub/__init__.py"):
        (tmp_path / init).write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg.sub import b\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (tmp_path / "pkg" / "c.py").write_text("import pkg.a\n\ndef g():\n    pass\n")
    (tmp_path / "pkg" / "d.py").write_text("from pkg import a\n")
    assert import_cycles(tmp_path, ("pkg",)) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


GLOBAL_ON_PURPOSE = {"backends/registry.py"}  # the entry points, discovered once per process (not a setting)


def statements(path: Path, kind: type) -> list[int]:
    return [n.lineno for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, kind)]


def test_no_module_global_holds_a_run_setting() -> None:
    """Settings travel as values (packager.settings.RunSettings); no module rebinds a global to hold one
    (the thread count was one: bench.threads' ``_current``, read back by ``current_threads()``)."""
    found = {
        path.relative_to(ROOT).as_posix(): statements(path, ast.Global)
        for package in PACKAGES
        for path in modules(package)
    }
    assert {k: v for k, v in found.items() if v and k not in GLOBAL_ON_PURPOSE} == {}


def limits_built(path: Path) -> list[int]:
    """Lines where ``path`` calls ``Limits(...)`` (or ``something.Limits(...)``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "Limits":
                lines.append(node.lineno)
    return lines


def test_archive_limits_are_built_in_one_place() -> None:
    """The defaults once (DEFAULT_LIMITS); a run's own from its flags (packager.limits.limits_from, a
    replace of the defaults) travel in its settings: no code path falls back to defaults of its own."""
    found = {
        path.relative_to(ROOT).as_posix(): limits_built(path)
        for package in PACKAGES
        for path in modules(package)
    }
    assert {k: len(v) for k, v in found.items() if v} == {"packager/archive/validator.py": 1}
