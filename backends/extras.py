"""Optional libraries, imported lazily: a missing one raises MissingExtraError naming the extra to install.

``import backends.trt`` works on a laptop without TensorRT; only using it (exporting an engine, loading one)
calls :func:`require` and fails with ``pip install 'weightpack[gpu]'`` in the message.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from backends.errors import MissingExtraError

# module -> (extra that provides it, distribution name shown to the user), for modules no backend owns;
# each backend declares its own in its spec (``BackendSpec.extras``).
EXTRAS = {
    "pynvml": ("gpu", "nvidia-ml-py"),
}


def extra_for(module: str) -> tuple[str, str]:
    """``(extra, distribution)`` that provides ``module``: a backend's declaration, else this table."""
    from backends.registry import BACKENDS

    for spec in BACKENDS.values():
        if module in spec.extras:
            return spec.extras[module]
    return EXTRAS.get(module, ("gpu", module))


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` or raise MissingExtraError saying that ``what`` needs it and which extra has it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra, dist = extra_for(module)
        raise MissingExtraError(what, extra, dist) from None


def available(module: str) -> bool:
    """True when ``module`` imports (the optional feature can be used)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
