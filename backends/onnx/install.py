"""Which onnxruntime is installed, and is that install usable for the device asked for?

``onnxruntime`` (CPU) and ``onnxruntime-gpu`` both write the same ``onnxruntime`` module; installed into the
same folder, whichever was unpacked last wins file by file and CUDAExecutionProvider commonly disappears
(onnxruntime's install docs: only one may be installed). weightpack's extras keep them apart (``cpu`` vs
``gpu``); this module catches an environment where they still meet, or where CUDA is asked of a CPU-only
onnxruntime, and says the exact command that repairs it. :func:`diagnose` is the decision, a pure function
over distribution facts; :func:`check` reads the facts from the real metadata and raises.
"""

from __future__ import annotations

import importlib.metadata
import shlex
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from backends.errors import BrokenInstallError, MissingExtraError

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
DEFAULT_SPECS = {CPU_DIST: "onnxruntime>=1.17", GPU_DIST: "onnxruntime-gpu>=1.17"}


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


def requirement_specs() -> dict[str, str]:
    """The ``onnxruntime``/``onnxruntime-gpu`` requirements weightpack's own metadata declares (its
    ``cpu`` and ``gpu`` extras), so the fix command installs what the project asks for."""
    specs = dict(DEFAULT_SPECS)
    try:
        requires = importlib.metadata.requires("weightpack") or []
    except importlib.metadata.PackageNotFoundError:
        return specs
    from packaging.requirements import Requirement

    for line in requires:
        req = Requirement(line)
        if _normalise(req.name) in specs:
            specs[_normalise(req.name)] = f"{req.name}{req.specifier}"
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


def check(device: str, providers: Iterable[str] | None = None) -> None:
    """Raise BrokenInstallError (exit 3) naming the fix when onnxruntime cannot serve ``device``;
    MissingExtraError when no onnxruntime is installed at all."""
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


def preflight(devices: Sequence[str]) -> None:
    """Run before a pack that builds onnx packages: fail the whole run up front (exit 3), not each
    package's verification, when the onnxruntime install cannot serve one of ``devices``."""
    want = next((d for d in devices if d.startswith("cuda")), devices[0] if devices else "cpu")
    check(want)
