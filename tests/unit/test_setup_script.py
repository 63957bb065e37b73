"""scripts/setup.sh's flavour decision, without a GPU: a fake ``nvidia-smi`` on PATH and a base interpreter
whose ``torch`` reports a CUDA build, with WEIGHTPACK_SETUP_DRY_RUN=1 so the commands are printed, not run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _fake_bin(tmp_path: Path, *, nvidia: bool, cuda_torch: bool | None) -> dict[str, str]:
    """PATH with (or without) an nvidia-smi that lists one GPU, and a PYTHON whose torch is a CUDA
    build (``cuda_torch``), a CPU build, or absent (``None``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if nvidia:
        smi = bin_dir / "nvidia-smi"
        smi.write_text(
            '#!/bin/sh\necho "GPU 0: NVIDIA H200 (UUID: GPU-00000000-0000-0000-0000-000000000000)"\n'
        )
        smi.chmod(0o755)
    site = tmp_path / "site"
    if cuda_torch is not None:
        (site / "torch").mkdir(parents=True)
        cuda = '"13.0"' if cuda_torch else "None"
        version = "2.11.0+cu130" if cuda_torch else "2.13.0+cpu"
        (site / "torch" / "__init__.py").write_text(
            f'__version__ = "{version}"\nclass version:\n    cuda = {cuda}\n'
        )
    else:
        site.mkdir()
        (site / "torch.py").write_text("raise ImportError('no torch here')\n")
    python = bin_dir / "base-python"
    # a base interpreter, not this venv's (a venv's interpreter is inherited through a .pth file instead)
    base = getattr(sys, "_base_executable", sys.executable)
    python.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {base} -S "$@"\n')
    python.chmod(0o755)
    # a PATH without any real nvidia-smi: our bin first, then only the folders of bash and coreutils
    keep = {str(Path(shutil.which(t)).parent) for t in ("bash", "sh", "cat", "env") if shutil.which(t)}
    keep = [d for d in keep if not (Path(d) / "nvidia-smi").exists()]
    return {
        "PATH": os.pathsep.join([str(bin_dir), *sorted(keep)]),
        "PYTHON": str(python),
        "WEIGHTPACK_VENV": str(tmp_path / "venv"),
        "WEIGHTPACK_SETUP_DRY_RUN": "1",
        "HOME": str(tmp_path),
    }


def _run(env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_nvidia_driver_and_cuda_torch_keep_the_machines_torch(tmp_path: Path) -> None:
    out = _run(_fake_bin(tmp_path, nvidia=True, cuda_torch=True))
    venv = tmp_path / "venv"
    assert "setup: flavour gpu" in out
    assert f"-m venv --system-site-packages {venv}" in out  # the machine's CUDA torch stays visible
    assert "keeping torch 2.11.0+cu130 (CUDA 13.0)" in out
    assert f"torch==2.11.0+cu130' > '{venv}/weightpack-torch-constraint.txt'" in out
    install = next(line for line in out.splitlines() if "-e .[" in line)
    assert install.endswith(f"-c {venv}/weightpack-torch-constraint.txt -e .[gpu,dev]")
    assert "pip install -q torch" not in out  # never a second torch
    assert "install.check('cuda', probe=True)" in out  # a session must keep the CUDA provider
    assert "setup: extra gpu (torch CUDA 13.0)" in out  # onnxruntime-gpu of torch's CUDA major


def test_nvidia_driver_without_torch_installs_a_cuda_build(tmp_path: Path) -> None:
    out = _run(_fake_bin(tmp_path, nvidia=True, cuda_torch=None))
    assert "setup: flavour gpu" in out and "--system-site-packages" not in out
    assert "pip install -q torch>=2.4" in out and "-e .[gpu,dev]" in out


def test_no_driver_is_the_cpu_flavour(tmp_path: Path) -> None:
    out = _run(_fake_bin(tmp_path, nvidia=False, cuda_torch=True))
    assert "setup: flavour cpu" in out and "--system-site-packages" not in out
    assert "pip install -q torch==2.13.0" in out and "-e .[cpu,dev]" in out
    assert "[gpu" not in out


def test_flavour_override_is_validated(tmp_path: Path) -> None:
    env = {**_fake_bin(tmp_path, nvidia=False, cuda_torch=None), "WEIGHTPACK_FLAVOUR": "tpu"}
    done = subprocess.run(
        ["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2 and "must be cpu or gpu, not 'tpu'" in done.stderr


# ---- a real venv: the lent box's python3 is itself a venv (/opt/torch/.venv) ---------------------------


def _fake_cuda_torch(site: Path) -> None:
    """A package named torch that reports a CUDA build, as the lent box's torch 2.11.0+cu130 does."""
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text(
        '__version__ = "2.11.0+cu130"\nclass version:\n    cuda = "13.0"\n'
    )


@pytest.mark.slow  # two real venvs and the script end to end (python -m venv with pip: ~5 s)
def test_a_cuda_torch_inside_a_venv_interpreter_is_kept(tmp_path: Path) -> None:
    """`python -m venv --system-site-packages` run by a venv's interpreter inherits the BASE interpreter's
    site-packages, not that venv's: the box's torch went missing and setup downloaded another one."""
    source = tmp_path / "torch-venv"  # stands for /opt/torch/.venv: no pip needed, nothing downloaded
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(source)], check=True, timeout=60)
    base_python = source / "bin" / "python"
    purelib = subprocess.run(
        [str(base_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    _fake_cuda_torch(Path(purelib))
    env = {
        **os.environ,
        "PYTHON": str(base_python),
        "WEIGHTPACK_VENV": str(tmp_path / "venv"),
        "WEIGHTPACK_FLAVOUR": "gpu",
        "WEIGHTPACK_SETUP_STOP": "venv",  # create the venv, then stop before pip (no index here)
        "HOME": str(tmp_path),
    }
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        ["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    probe = "import torch; print(torch.__version__, torch.version.cuda, torch.__file__)"
    seen = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-c", probe],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert seen.returncode == 0, f"the new venv does not see the machine's torch: {seen.stderr}"
    version, cuda, where = seen.stdout.split()
    assert (version, cuda) == ("2.11.0+cu130", "13.0") and where.startswith(purelib)
    assert f"{base_python} is a venv" in done.stdout and "--system-site-packages" not in done.stdout


@pytest.mark.parametrize("workers", ["0", "two", "-1", "1.5"])
def test_the_test_script_refuses_a_worker_count_that_is_no_whole_number(workers: str) -> None:
    """scripts/test.sh says what it accepts, exit 2, before any set-up runs."""
    env = {**os.environ, "WEIGHTPACK_TEST_WORKERS": workers, "WEIGHTPACK_SETUP_DRY_RUN": "1"}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"WEIGHTPACK_TEST_WORKERS must be a whole number from 1, not '{workers}'" in proc.stderr
    assert "setup:" not in proc.stdout  # refused before the set-up
