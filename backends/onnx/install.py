"""Which onnxruntime is installed, and is that install usable for the device asked for?

``onnxruntime`` (CPU) and ``onnxruntime-gpu`` both write the same ``onnxruntime`` module; installed into the
same folder, whichever was unpacked last wins file by file and CUDAExecutionProvider commonly disappears
(onnxruntime's install docs: only one may be installed). weightpack's extras keep them apart (``cpu`` vs
``gpu``); this module catches an environment where they still meet, or where CUDA is asked of a CPU-only
onnxruntime, and says the exact command that repairs it. :func:`diagnose` is the decision, a pure function
over distribution facts; :func:`check` reads the facts from the real metadata and raises.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from backends.errors import BrokenInstallError, MissingExtraError
from backends.onnx import libs
from backends.onnx.libs import LibraryPlan
from backends.onnx.pins import gpu_extra, installed_torch_cuda

CPU_DIST = "onnxruntime"
GPU_DIST = "onnxruntime-gpu"
# Every PyPI distribution that installs the ``onnxruntime`` import package.
ORT_DISTS = (
    CPU_DIST,
    GPU_DIST,
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-rocm",
    "onnxruntime-training",
    "ort-nightly",
    "ort-nightly-gpu",
)
DEFAULT_SPECS = {CPU_DIST: "onnxruntime>=1.17", GPU_DIST: "onnxruntime-gpu>=1.27,<1.32"}


@dataclass(frozen=True)
class OrtDist:
    """One installed distribution that provides the ``onnxruntime`` module."""

    name: str
    version: str
    location: str
    """The site folder it is installed in (``dist.locate_file('')``)."""


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed(paths: Sequence[str] | None = None) -> list[OrtDist]:
    """The onnxruntime distributions found on ``paths`` (default ``sys.path``), in path order."""
    search = list(paths if paths is not None else sys.path)
    seen: dict[tuple[str, str], OrtDist] = {}
    for dist in importlib.metadata.distributions(path=search):
        name = _normalise(dist.metadata["Name"] or "")
        if name in ORT_DISTS:
            location = str(Path(str(dist.locate_file(""))).resolve())
            seen.setdefault((name, location), OrtDist(name, dist.version, location))
    order = {str(Path(p).resolve()): i for i, p in enumerate(search) if p}
    return sorted(seen.values(), key=lambda d: (order.get(d.location, len(order)), d.name))


def requirement_specs(requires: Sequence[str] | None = None, gpu: str | None = None) -> dict[str, str]:
    """The ``onnxruntime``/``onnxruntime-gpu`` requirements weightpack's own metadata declares (``requires``,
    default: the installed weightpack's): the ``cpu`` extra's, and the ``gpu`` extra's for this torch's
    CUDA major (``gpu``: which gpu extra, default :func:`gpu_extra` of the installed torch), so the fix
    command installs what the project asks for."""
    specs = dict(DEFAULT_SPECS)
    if requires is None:
        try:
            requires = importlib.metadata.requires("weightpack") or []
        except importlib.metadata.PackageNotFoundError:
            return specs
    from packaging.requirements import Requirement

    gpu = gpu or gpu_extra(installed_torch_cuda())[0]
    for line in requires:
        req = Requirement(line)
        name = _normalise(req.name)
        if name not in specs:
            continue
        extra = "cpu" if name == CPU_DIST else gpu
        if req.marker is None or req.marker.evaluate({"extra": extra}):
            specs[name] = f"{req.name}{req.specifier}"
    return specs


def diagnose(
    dists: Sequence[OrtDist],
    *,
    want_cuda: bool,
    providers: Iterable[str] | None,
    python: str = sys.executable,
    specs: dict[str, str] | None = None,
) -> str | None:
    """What is wrong with this onnxruntime install for the job, with the command that fixes it; ``None``
    when nothing is. ``providers`` are ``onnxruntime.get_available_providers()`` (``None``: not imported,
    only the metadata rules apply). ``dists`` come in import order: the first one's folder wins."""
    specs = specs or DEFAULT_SPECS
    pip = f"{shlex.quote(python)} -m pip"
    names = sorted({d.name for d in dists})
    uninstall_all = f"{pip} uninstall -y {' '.join(names or [CPU_DIST])}"
    keep = GPU_DIST if (want_cuda or GPU_DIST in names) else CPU_DIST
    reinstall = f"{uninstall_all} && {pip} install {shlex.quote(specs[keep])}"
    if not dists:
        return None  # not installed at all: MissingExtraError's business, see check()
    by_folder: dict[str, list[str]] = {}
    for d in dists:
        by_folder.setdefault(d.location, []).append(f"{d.name} {d.version}")
    for folder, here in by_folder.items():
        if len(here) > 1:
            return (
                f"{' and '.join(here)} are installed together in {folder}; they write the same "
                "'onnxruntime' module, so one silently overwrote the other (install only one: "
                "weightpack[cpu] or weightpack[gpu]). Fix: " + reinstall
            )
    first = dists[0]
    if want_cuda and providers is not None and "CUDAExecutionProvider" not in providers:
        if first.name == GPU_DIST:
            why = (
                f"the 'onnxruntime' module imported from {first.location} has no CUDAExecutionProvider "
                f"although {first.name} {first.version} is installed there (its files were overwritten)"
            )
        else:
            why = (
                f"CUDA was asked for, but the onnxruntime that is imported ({first.name} {first.version} "
                f"in {first.location}) is built without CUDAExecutionProvider"
            )
        return f"{why}. Fix: {reinstall}"
    return None


def check(
    device: str,
    providers: Iterable[str] | None = None,
    *,
    probe: bool | Callable[[list[str]], list[str]] = False,
    tensorrt: bool = False,
) -> list[str] | None:
    """Raise BrokenInstallError (exit 3) naming the fix when onnxruntime cannot serve ``device``;
    MissingExtraError when no onnxruntime is installed at all.

    ``get_available_providers()`` lists what onnxruntime was *built* with, not what loads: with ``probe``
    (set-up, the pack preflight) a CUDA device is checked for real, by a session on a tiny graph whose
    ``get_providers()`` must keep every provider asked for (``probe`` may be the function that makes that
    session: requested providers -> the session's). Returns the session's providers when probed."""
    dists = installed()
    want_cuda = device.startswith("cuda")
    if not dists:
        raise MissingExtraError(
            f"running onnx on {device}", "gpu" if want_cuda else "cpu", GPU_DIST if want_cuda else CPU_DIST
        )
    if providers is None and want_cuda:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    problem = diagnose(dists, want_cuda=want_cuda, providers=providers, specs=requirement_specs())
    if problem:
        raise BrokenInstallError(problem)
    if not (want_cuda and probe):
        return None
    requested = [*(["TensorrtExecutionProvider"] if tensorrt else []), "CUDAExecutionProvider"]
    plans = prepare(requested)
    got = (probe if callable(probe) else probe_session)([*requested, "CPUExecutionProvider"])
    problem = provider_problem(requested, got, plans, dists[0], cuda_build(), python=sys.executable)
    if problem:
        raise BrokenInstallError(problem)
    return got


def prepare(requested: Sequence[str]) -> dict[str, LibraryPlan | None]:
    """Load what the providers in ``requested`` need from pip's NVIDIA folders (:mod:`backends.onnx.libs`)
    before onnxruntime opens them; returns each provider's plan (what was missing stays in it)."""
    cuda = cuda_build()
    plans = {
        name: libs.plan_for(name, cuda_major=cuda) for name in requested if name in libs.PROVIDER_LIBRARIES
    }
    for plan in plans.values():
        if plan is not None:
            libs.preload(plan.load)
    return plans


def provider_problem(
    requested: Sequence[str],
    got: Sequence[str],
    plans: Mapping[str, LibraryPlan | None],
    ort: OrtDist | None,
    cuda_major: int | None,
    *,
    python: str = "python",
) -> str | None:
    """Why a session kept fewer providers than ``requested`` (``got``: its ``get_providers()``), with the
    command that repairs it; ``None`` when it kept them all. ``plans``: each provider's libraries
    (:func:`backends.onnx.libs.plan_for`), whose missing sonames say what to install; ``ort``: the
    onnxruntime distribution that is imported."""
    dropped = [name for name in requested if name not in got]
    if not dropped:
        return None
    label = f"{ort.name} {ort.version}" if ort else "onnxruntime"
    version = ort.version if ort else ""
    reasons: list[str] = []
    missing: list[str] = []
    for name in dropped:
        plan = plans.get(name) or LibraryPlan()
        missing += [s for s in plan.missing if s not in missing]
        why = plan.note or (
            f"it needs {', '.join(plan.missing)}, found nowhere pip puts them"
            if plan.missing
            else "its libraries are there: see onnxruntime's log above"
        )
        reasons.append(f"{name} is listed by {label} but did not load ({why})")
    py = shlex.quote(python)
    reinstall = f"{py} -m pip install --force-reinstall 'onnxruntime-gpu[cuda,cudnn]=={version}'"
    fix = libs.fix_for(missing, version, cuda_major, py) if missing else reinstall
    return f"{'; '.join(reasons)}; the session runs on {list(got)}. Fix: {fix}"


TRT_LIBS_DIST = re.compile(r"^tensorrt(-cu\d+)?-libs$")


def tensorrt_version(paths: Sequence[str] | None = None) -> str | None:
    """The version of the TensorRT the TensorRT provider loads: pip's ``tensorrt-cu13-libs`` (and kin),
    else what the ``libnvinfer`` it opens reports (``getInferLibVersion``: a system install); None when
    neither is found."""
    for dist in importlib.metadata.distributions(path=list(paths if paths is not None else sys.path)):
        if TRT_LIBS_DIST.match(_normalise(dist.metadata["Name"] or "")):
            return dist.version
    library = libs.provider_library("TensorrtExecutionProvider")
    soname = next((s for s in libs.elf_needed(library) if libs.trt_major(s)), None) if library else None
    if soname is None:
        return None
    try:
        code = int(ctypes.CDLL(soname).getInferLibVersion())
    except (OSError, AttributeError):
        return None
    return libs.infer_lib_version(code)


def cuda_build() -> int | None:
    """The CUDA major the installed onnxruntime was built for (``capi/build_and_package_info.py``, read
    without importing onnxruntime); None for a CPU build."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    info = Path(next(iter(spec.submodule_search_locations))) / "capi" / "build_and_package_info.py"
    try:
        return parse_cuda_build(info.read_text())
    except OSError:
        return None


def parse_cuda_build(text: str) -> int | None:
    """``cuda_version = '13.0'`` in onnxruntime's build info -> 13 (None when it names none)."""
    match = re.search(r"cuda_version\s*=\s*['\"](\d+)", text)
    return int(match.group(1)) if match else None


def probe_session(providers: Sequence[str]) -> list[str]:
    """``get_providers()`` of a session created with ``providers`` on a one-node graph (a 1x1 convolution,
    which the CUDA provider runs with cuDNN), after one run: what really loads and runs, where
    ``get_available_providers()`` only lists what onnxruntime was built with. BrokenInstallError when the
    run fails (a library the provider opens only while it runs)."""
    import numpy as np
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [2.0])
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "probe", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 8)  # readable by every onnxruntime weightpack accepts
    onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the fallback warning is what this probe reports itself
    with warnings.catch_warnings():  # "not in available provider names": what this probe reports itself
        warnings.simplefilter("ignore")
        session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=list(providers))
    got = list(session.get_providers())
    try:
        (out,) = session.run(None, {"x": np.ones((1, 1, 4, 4), np.float32)})
    except Exception as exc:  # onnxruntime's untyped errors: a kernel that could not load its library
        raise BrokenInstallError(
            f"a session on {got} could not run a convolution: {exc}. Fix: {shlex.quote(sys.executable)} -m "
            f"pip install --force-reinstall 'onnxruntime-gpu[cuda,cudnn]=={_version()}'"
        ) from None
    if not np.allclose(out, 2.0):
        raise BrokenInstallError(f"a session on {got} computed a 1x1 convolution wrongly ({out.ravel()[:4]})")
    return got


def _version() -> str:
    dists = installed()
    return dists[0].version if dists else ""


def preflight(devices: Sequence[str]) -> None:
    """Run before a pack that builds onnx packages: fail the whole run up front (exit 3), not each
    package's verification, when the onnxruntime install cannot serve one of ``devices`` (on CUDA, a
    probe session must keep CUDAExecutionProvider)."""
    want = next((d for d in devices if d.startswith("cuda")), devices[0] if devices else "cpu")
    check(want, probe=True)
