"""Files the libraries a run uses write on their own, kept inside the run's cache folder (or not written).

Left alone, a ``pack`` run leaves files outside ``--out`` and ``--cache-dir``: onnxruntime's telemetry
writes ``$TMPDIR/.ses`` and a device-id database under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime``
on import, torch's inductor makes ``$TMPDIR/torchinductor_$USER``, matplotlib a font cache under
``~/.cache/matplotlib`` and ``~/.config/matplotlib``. Each library reads a variable before it first writes,
so :func:`contain` sets them (only where the user has not: an explicit setting wins) before any of them is
imported. ``tests/hostile/test_side_files.py`` runs pack with ``$HOME`` and ``$TMPDIR`` pointed at empty
folders and lists what appeared there.
"""

from __future__ import annotations

import os
from pathlib import Path

TELEMETRY_OFF = {"ORT_DISABLE_TELEMETRY": "1"}
"""onnxruntime's 1DS telemetry: off means no ``.ses`` file and no device-id database."""

UNDER_CACHE = {
    "TORCHINDUCTOR_CACHE_DIR": "torchinductor",
    "TRITON_CACHE_DIR": "triton",
    "MPLCONFIGDIR": "matplotlib",
    "CUDA_CACHE_PATH": "cuda-compute-cache",
}
"""Variables naming a folder each library writes its own cache into, and the folder's name under
``--cache-dir``: kept from one run to the next like the downloads, never in ``$TMPDIR`` or ``~``."""


def contain(cache_dir: Path) -> dict[str, str]:
    """Point the libraries' side files into ``cache_dir`` (telemetry off); returns what was set. Must run
    before onnxruntime, torch or matplotlib is imported (they read the variables once)."""
    wanted = {**TELEMETRY_OFF, **{name: str(Path(cache_dir) / sub) for name, sub in UNDER_CACHE.items()}}
    applied = {}
    for name, value in wanted.items():
        if not os.environ.get(name):
            os.environ[name] = value
            applied[name] = value
    return applied
