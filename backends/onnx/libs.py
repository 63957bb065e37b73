"""The native libraries onnxruntime-gpu's execution providers open, and where pip put them.

onnxruntime-gpu's CUDA and TensorRT providers are shared libraries (``capi/libonnxruntime_providers_*.so``)
that ``dlopen`` CUDA, cuDNN and TensorRT by soname (``libcudnn.so.9``, ``libnvinfer.so.10``) when a session
is created. pip installs those libraries into ``site-packages/nvidia/*/lib`` and
``site-packages/tensorrt_libs``, which are not on the loader's search path: they are found only when
something loaded them first (``import torch`` for a torch of the same CUDA major, ``import tensorrt``), and
``onnxruntime.preload_dlls()`` searches only the site folder onnxruntime itself is in. A provider whose
library cannot load is silently dropped from the session. And every released onnxruntime-gpu (1.26 to 1.31
at least) builds its TensorRT provider against ``libnvinfer.so.10``: with TensorRT 11 installed it cannot
load at all.

So the decision is made here, from the provider library's own ELF ``DT_NEEDED`` entries: which file to
load for each soname it needs (:func:`library_plan`, pure), which TensorRT library the TensorRT provider
gets (:func:`trt_library`, pure), and what to install when one is missing (:func:`fix_for`, pure).
:func:`preload` then loads the chosen files with ``RTLD_GLOBAL`` before the session is created.
"""

from __future__ import annotations

import ctypes
import importlib.util
import mmap
import re
import struct
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROVIDER_LIBRARIES = {
    "CUDAExecutionProvider": "libonnxruntime_providers_cuda.so",
    "TensorrtExecutionProvider": "libonnxruntime_providers_tensorrt.so",
}
# Libraries of the C runtime and the NVIDIA driver: never pip's business, always on the loader's path.
SYSTEM = re.compile(r"^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux[-\w]*|libcuda)\.so")
# Folders (relative to a site folder) where pip's NVIDIA wheels put their libraries.
PIP_LIBRARY_GLOBS = ("nvidia/*/lib", "nvidia/cu*/lib", "tensorrt_libs", "torch/lib")


def elf_needed(path: Path) -> list[str]:
    """The ``DT_NEEDED`` sonames of a 64-bit little-endian ELF shared library (what ``readelf -d`` lists
    as NEEDED), read through a memory map (CUDA libraries run to hundreds of MB; only headers are
    touched) without running anything; empty for a file that is no such ELF."""
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _needed(data)
    except (OSError, ValueError, struct.error):  # empty, unreadable or truncated: no ELF to read
        return []


def _needed(data: mmap.mmap) -> list[str]:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD: maps file offsets to addresses (DT_STRTAB is an address)
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return []
    entries, strtab = [], None
    for off in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, off)
        if tag == 0:
            break
        if tag == 1:
            entries.append(value)
        elif tag == 5:
            strtab = value
    if strtab is None:
        return []
    base = next((off + strtab - va for va, off, size in loads if va <= strtab < va + size), strtab)
    return [data[base + n : data.find(b"\0", base + n)].decode() for n in entries]


def site_folders(paths: Sequence[str] | None = None) -> list[Path]:
    """The existing folders of ``paths`` (default ``sys.path``), in import order."""
    return [Path(p) for p in (paths if paths is not None else sys.path) if p and Path(p).is_dir()]


def pip_libraries(folders: Iterable[Path]) -> dict[str, list[Path]]:
    """soname -> files named so in pip's NVIDIA library folders under ``folders``, in folder order."""
    found: dict[str, list[Path]] = {}
    for folder in folders:
        for pattern in PIP_LIBRARY_GLOBS:
            for lib_dir in sorted(folder.glob(pattern)):
                for file in sorted(lib_dir.glob("lib*.so*")):
                    if file.is_file() and file not in found.get(file.name, []):
                        found.setdefault(file.name, []).append(file)
    return found


@dataclass(frozen=True)
class LibraryPlan:
    """What a provider library needs before it can load."""

    load: list[Path] = field(default_factory=list)
    """Files to load first (``RTLD_GLOBAL``), dependencies before dependants."""
    missing: list[str] = field(default_factory=list)
    """Sonames found nowhere pip puts them (nor loaded already): the provider will not load."""
    note: str | None = None
    """Why the provider cannot load, when more can be said than the missing names (a TensorRT major)."""


def library_plan(
    needed: Sequence[str],
    available: Mapping[str, Sequence[Path]],
    needs_of: Mapping[Path, Sequence[str]] | None = None,
    loaded: Iterable[str] = (),
) -> LibraryPlan:
    """For the sonames a provider ``needed`` (its DT_NEEDED), the pip files to load: the first file of
    each in ``available``, preceded by what those files need themselves (``needs_of``: each file's
    DT_NEEDED), transitively. System and driver libraries, and sonames in ``loaded`` (already in this
    process, e.g. by ``import torch``), need nothing; the rest are ``missing``."""
    needs_of = needs_of or {}
    done = set(loaded)
    order: list[Path] = []
    missing: list[str] = []

    def visit(soname: str, stack: tuple[str, ...]) -> None:
        if soname in done or SYSTEM.match(soname) or soname in stack:
            return
        files = available.get(soname) or []
        if not files:
            if soname not in missing:
                missing.append(soname)
            return
        for dep in needs_of.get(files[0], ()):
            visit(dep, (*stack, soname))
        done.add(soname)
        order.append(files[0])

    for soname in needed:
        if not soname.startswith("libonnxruntime"):  # its own libraries sit beside it ($ORIGIN)
            visit(soname, ())
    return LibraryPlan(order, missing)


def trt_major(soname: str) -> int | None:
    """The TensorRT major a ``libnvinfer.so.N`` soname names."""
    match = re.fullmatch(r"libnvinfer\.so\.(\d+)", soname)
    return int(match.group(1)) if match else None


def trt_library(
    needed: Sequence[str], available: Mapping[str, Sequence[Path]]
) -> tuple[Path | None, str | None]:
    """``(path, problem)``: the ``libnvinfer.so.N`` file the TensorRT provider will get, or why it gets
    none: TensorRT absent, or only another major installed (the provider opens exactly the major it was
    built against, e.g. onnxruntime-gpu 1.31's opens ``libnvinfer.so.10``)."""
    wanted = next((s for s in needed if trt_major(s) is not None), None)
    if wanted is None:
        return None, "the TensorRT provider library names no libnvinfer.so.N (not a TensorRT provider?)"
    files = available.get(wanted) or []
    if files:
        return Path(files[0]), None
    others = sorted(s for s in available if trt_major(s) is not None and s != wanted)
    if others:
        found = ", ".join(f"{s} ({available[s][0].parent})" for s in others)
        return None, (
            f"onnxruntime's TensorRT provider opens {wanted} (TensorRT {trt_major(wanted)}), but only "
            f"{found} is installed: the provider cannot load it"
        )
    return None, f"onnxruntime's TensorRT provider opens {wanted}, and no TensorRT library is installed"


def fix_for(missing: Sequence[str], ort_version: str, cuda_major: int | None, python: str = "python") -> str:
    """The pip command that installs what ``missing`` lacks for onnxruntime-gpu ``ort_version`` built for
    CUDA ``cuda_major``: its ``cuda``/``cudnn`` extras pull the CUDA and cuDNN wheels of its own CUDA
    major; TensorRT comes as ``tensorrt-cuNN`` at the major the provider opens."""
    pip = f"{python} -m pip install"
    parts = []
    cuda_libs = [s for s in missing if trt_major(s) is None and not s.startswith("libnvonnxparser")]
    if cuda_libs:
        parts.append(f"{pip} 'onnxruntime-gpu[cuda,cudnn]=={ort_version}'")
    majors = sorted({trt_major(s) or _parser_major(s) for s in missing} - {None})  # type: ignore[arg-type]
    for major in majors:
        suffix = f"-cu{cuda_major}" if cuda_major else ""
        parts.append(f"{pip} 'tensorrt{suffix}>={major},<{major + 1}'")
    return " && ".join(parts)


def infer_lib_version(code: int) -> str:
    """``getInferLibVersion()``'s integer as a version: TensorRT 10+ encodes major*10000 + minor*100 +
    patch (101601 -> 10.16.1), earlier ones major*1000 + minor*100 + patch (8601 -> 8.6.1)."""
    if code >= 100000:
        return f"{code // 10000}.{code // 100 % 100}.{code % 100}"
    return f"{code // 1000}.{code // 100 % 10}.{code % 100}"


def _parser_major(soname: str) -> int | None:
    match = re.fullmatch(r"libnvonnxparser\.so\.(\d+)", soname)
    return int(match.group(1)) if match else None


def provider_library(provider: str) -> Path | None:
    """The installed onnxruntime's library of ``provider``, found without importing onnxruntime (a
    library must be preloaded before onnxruntime opens it)."""
    spec = importlib.util.find_spec("onnxruntime")
    name = PROVIDER_LIBRARIES.get(provider)
    if spec is None or not spec.submodule_search_locations or name is None:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "capi" / name
    return path if path.is_file() else None


def opened_at_run_time(provider: str, cuda_major: int | None) -> tuple[list[str], list[str]]:
    """``(required, optional)`` sonames a provider ``dlopen``s by name while it runs, which its DT_NEEDED
    does not list: cuDNN for the CUDA provider (convolutions; onnxruntime-gpu 1.31 no longer links it),
    cuFFT and NVRTC (a few operators) as onnxruntime's own ``preload_dlls`` treats them."""
    if provider != "CUDAExecutionProvider" or cuda_major is None:
        return [], []
    cufft = 12 if cuda_major >= 13 else 11
    return ["libcudnn.so.9"], [f"libcufft.so.{cufft}", f"libnvrtc.so.{cuda_major}"]


def plan_for(
    provider: str, paths: Sequence[str] | None = None, cuda_major: int | None = None
) -> LibraryPlan | None:
    """The :class:`LibraryPlan` of ``provider`` in this environment (None: onnxruntime has no such
    library, i.e. not onnxruntime-gpu); ``cuda_major``: the CUDA build of onnxruntime, for the libraries
    it opens at run time (:func:`opened_at_run_time`)."""
    library = provider_library(provider)
    if library is None:
        return None
    available = pip_libraries(site_folders(paths))
    needs_of = {files[0]: elf_needed(files[0]) for files in available.values()}
    required, optional = opened_at_run_time(provider, cuda_major)
    needed = [*elf_needed(library), *required, *(s for s in optional if s in available)]
    plan = library_plan(needed, available, needs_of, loaded_sonames())
    if provider == "TensorrtExecutionProvider" and any(trt_major(s) for s in plan.missing):
        plan = LibraryPlan(plan.load, plan.missing, trt_library(needed, available)[1])
    return plan


def loaded_sonames() -> set[str]:
    """File names of the shared libraries this process has mapped (``/proc/self/maps``)."""
    try:
        text = Path("/proc/self/maps").read_text()
    except OSError:
        return set()
    return {Path(line.split()[-1]).name for line in text.splitlines() if ".so" in line}


def preload(files: Sequence[Path]) -> list[str]:
    """Load ``files`` in order with ``RTLD_GLOBAL`` (so a provider's ``dlopen`` by soname finds them);
    returns the errors of those that failed (an empty list: all loaded)."""
    errors = []
    for file in files:
        try:
            ctypes.CDLL(str(file), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            errors.append(f"{file}: {exc}")
    return errors
