"""A full disk (or file-size limit) while a package is extracted for verification is the environment's
fault: exit 3 with the report written, as for a full disk while zipping, never a failed check (exit 1).

Both tests set a real ``RLIMIT_FSIZE`` in a child process: a write past it fails with EFBIG ("File too
large"; Python ignores SIGXFSZ), as it would on a full disk with ENOSPC.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from packager.archive import build_zip
from tests.hostile.helpers import ROOT, pack

LIMIT = 1 << 20  # every file a verification writes but the extracted weights fits under it

# verify_on_device on a package whose 2 MiB member cannot be extracted under the limit; prints what the
# Verification recorded
VERIFY_SCRIPT = """
import json, sys
from pathlib import Path
from bench.threads import default_threads
from packager.archive import DEFAULT_LIMITS
from packager.goldens import ParityCase
from packager.package_check import PackageCheck, PackageRef
from packager.ui import UI
from packager.verify import verify_on_device

zip_path = Path(sys.argv[1])
check = PackageCheck(
    PackageRef(zip_path, "l6", "onnx", "x:Y"), "cpu", (ParityCase(None, {}, {}),), lambda o, d: (0.0, 0.0),
    default_threads(), {}, DEFAULT_LIMITS,
)
error = verify_on_device(check, zip_path.parent / "goldens", UI()).error
print(json.dumps({"type": type(error).__name__, "exit_code": getattr(error, "exit_code", None),
                  "message": str(error)}))
"""


def file_size_limit() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def partials(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith(".partial")]


def test_file_size_limit_while_extracting_for_verification_is_a_write_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    tree = make_tree(tmp_path / "tree", {"config.json": b"{}", "weights.onnx": bytes(2 * LIMIT)})
    zip_path = build_zip(tree, out / "pkg.zip").zip_path  # written before the limit is set
    proc = subprocess.run(
        [sys.executable, "-c", VERIFY_SCRIPT, str(zip_path), str(ROOT / "recipes" / "minilm.toml")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=file_size_limit,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    error = json.loads(proc.stdout.strip().splitlines()[-1])
    assert error["type"] == "WriteError" and error["exit_code"] == 3, error
    written = f"{out}: a write failed: File too large (errno {errno.EFBIG})"
    assert error["message"].startswith(f"extracting pkg.zip for verification: {written}"), error
    assert "raise the file-size limit) and re-run" in error["message"], error
    assert partials(out) == []  # the half-extracted folder was removed


def test_file_size_limit_while_verifying_a_reused_package_exits_3_with_a_report(
    minilm_pack_onnx: Path, tmp_path: Path
) -> None:
    """A re-run (``--reverify``: the zip is reused, so nothing large is written but the extraction)."""
    out = tmp_path / "out"
    shutil.copytree(minilm_pack_onnx, out)
    proc = pack(
        "minilm", "--variants", "l6", "--backends", "onnx", "--no-latency", "--reverify", "--out", str(out),
        "--quiet", env={"HF_HUB_OFFLINE": "1"}, preexec=file_size_limit, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 3, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    failure = report["failures"][-1]
    assert not report["passed"] and (failure["error"], failure["exit_code"]) == ("WriteError", 3), failure
    assert "File too large" in failure["message"] and "re-run" in failure["message"], failure
    assert partials(out) == []
