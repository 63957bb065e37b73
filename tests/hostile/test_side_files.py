"""A run writes only into ``--out`` and ``--cache-dir`` (issue 25): the libraries it uses wrote onnxruntime's
telemetry (``$TMPDIR/.ses``, a device-id database under ``~/.cache/Microsoft``), torch inductor's
``$TMPDIR/torchinductor_$USER`` and matplotlib's caches under ``~/.cache`` and ``~/.config``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hostile.helpers import pack

pytestmark = pytest.mark.slow
LIBRARY_VARIABLES = (  # packager.side_files sets the first five; none may come from the test's environment
    "ORT_DISABLE_TELEMETRY",
    "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR",
    "MPLCONFIGDIR",
    "CUDA_CACHE_PATH",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "WEIGHTPACK_CACHE",
)


def everything(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_pack_writes_nothing_outside_out_and_cache(tmp_path: Path, monkeypatch) -> None:
    home, tmp, work = tmp_path / "home", tmp_path / "tmp", tmp_path / "work"
    for folder in (home, tmp, work):
        folder.mkdir()
    for name in LIBRARY_VARIABLES:
        monkeypatch.delenv(name, raising=False)  # pack must set what it needs itself
    out, cache = tmp_path / "out", tmp_path / "cache"
    env = {"HOME": str(home), "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1"}
    proc = pack("minilm", "--backends", "onnx", "--out", str(out), "--cache-dir", str(cache), "--quiet",
                env=env, cwd=work)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "report.png").is_file()  # matplotlib ran (latency measured), onnxruntime too
    assert {"home": everything(home), "tmp": everything(tmp), "cwd": everything(work)} == {
        "home": [],
        "tmp": [],
        "cwd": [],
    }
    assert (cache / "matplotlib").is_dir()
    assert os.environ.get("ORT_DISABLE_TELEMETRY") is None  # set in pack's process, not in ours
