"""Shared fixtures. The suite's environment (tests/hermetic.py), the loopback servers (tests/servers/) and the
shared pack runs (tests/packs.py) are registered as plugins here."""

import sys
from pathlib import Path

import pytest

# The built-in recipes' own modules (recipes/mtcnn_nets.py, recipes/ppocr_files.py), which pack imports from
# the recipe's folder (packager.recipes.make_importable); tests that use them directly import them too.
RECIPE_MODULES = str(Path(__file__).resolve().parents[1] / "recipes")
if RECIPE_MODULES not in sys.path:
    sys.path.append(RECIPE_MODULES)

pytest_plugins = [
    "tests.hermetic",
    "tests.servers.hf_hub",
    "tests.servers.static",
    "tests.servers.registry",
    "tests.packs",
]


@pytest.hookimpl(trylast=True)  # after tests.packs has marked the session packs' users slow
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most ``slow`` tests first (a stable sort: otherwise in collection order). Under
    pytest-xdist (``--dist loadfile``, scripts/test.sh) a worker takes the next file when it is done, so the
    long files start early and the short ones fill in at the end, instead of one worker finishing a long
    file while the other waits."""
    slow: dict[str, int] = {}
    for item in items:
        file = item.nodeid.split("::", 1)[0]
        slow[file] = slow.get(file, 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[item.nodeid.split("::", 1)[0]])
