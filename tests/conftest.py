"""Shared fixtures. The suite's environment (tests/hermetic.py), the loopback servers (tests/servers/) and the
shared pack runs (tests/packs.py) are registered as plugins here."""

import sys
from pathlib import Path

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
