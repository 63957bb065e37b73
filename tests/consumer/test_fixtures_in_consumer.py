"""Issue 20.5: fixtures generated for a consumer-class recipe (``pack ppocr --fixtures DIR``) pass in the
consumer's own environment without weightpack: the generated test loads the package the way AutoModel
does (``device`` a ``torch.device``), feeds it the consumer's input type (a list of images) and judges the
text with the recipe's task check (weightpack's code, copied into DIR/weightpack_support).

"Without weightpack": .venv-consumer has weightpack installed (editable, so that ``.venv-consumer/bin/pack``
works), so the generated tests run with ``python -S`` and only the venv's site-packages folder on the
path: no ``.pth`` file runs, so the editable install's import hook is never installed, and pytest loads no
plugin by entry point (weightpack's dist-info names one); the test shows ``import packager`` fails there
while ``import inference_models`` works."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.hermetic import without_product_settings
from tests.packs import copy_of, pack_process

pytestmark = pytest.mark.slow  # a pack (its package reused), then the generated test in the consumer


def without_weightpack(consumer: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``consumer -S ARGS`` with the venv's own site-packages alone on the path."""
    purelib = subprocess.run(
        [consumer, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    env = {k: v for k, v in without_product_settings(os.environ).items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = purelib
    # weightpack's dist-info stays in site-packages and names a pytest plugin (the nightly): not loaded
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run(
        [consumer, "-S", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def test_generated_fixtures_pass_in_the_consumers_environment_without_weightpack(
    consumer, ppocr_packed: Path, tmp_path: Path
) -> None:
    """``pack ppocr --fixtures DIR`` by the consumer's venv, on a copy of the session's pack (its package
    and checks reused: the fixtures are what a re-run writes as well as a first one)."""
    out, fixtures = copy_of(ppocr_packed, tmp_path), tmp_path / "fixtures"
    proc = pack_process(
        "ppocr", "--out", str(out), "--no-latency", "--quiet", "--fixtures", str(fixtures),
        python=consumer, script=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in (fixtures / "weightpack_support").glob("*.py")) == [
        "__init__.py", "consumer_results.py", "outputs.py", "task_metrics.py", "tasks.py",
    ]  # fmt: skip
    isolated = without_weightpack(
        consumer, "-c", "import inference_models, numpy; import packager", cwd=fixtures
    )
    assert "No module named 'packager'" in isolated.stderr, isolated.stderr[-2000:]
    run = without_weightpack(
        consumer, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", ".", cwd=fixtures
    )
    text = run.stdout + run.stderr
    assert run.returncode == 0, text[-4000:]
    assert "1 passed" in text and "skipped" not in text, text[-2000:]
