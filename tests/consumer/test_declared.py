"""Issue 20.1 against the real consumer: each built-in family's declaration is true. A family that says
``[consumer] loads = false`` names an (architecture, task, backend) inference-models ships no class for,
for every backend it builds; a family of the consumer's names one it ships a class for, for every backend
(AutoModel looks the class up by exactly that key; tests/consumer/test_ocr_end_to_end.py and
test_detection_end_to_end.py then load the packages from the registry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.registry import find_backend
from packager.consumer import bridge
from packager.recipes import default_recipe_dirs, find_recipes, load_recipe

pytestmark = pytest.mark.slow  # one consumer start-up (~15 s)

BUILTIN = sorted(find_recipes(default_recipe_dirs()[-1]).values())


def keys_of(path: Path) -> list[list[str]]:
    recipe = load_recipe(path)
    return [[recipe.architecture, recipe.task, find_backend(b).wire_name or b] for b in recipe.backends]


@pytest.fixture(scope="module")
def implemented(consumer) -> dict[str, list[bool]]:
    """Each built-in recipe's keys, asked of the consumer in one start-up."""
    keys = {p.stem: keys_of(p) for p in BUILTIN}
    flat = [k for ks in keys.values() for k in ks]
    answers = iter(bridge.ask("implemented", {"keys": flat})["implemented"])
    return {name: [next(answers) for _ in ks] for name, ks in keys.items()}


@pytest.mark.parametrize("path", BUILTIN, ids=[p.stem for p in BUILTIN])
def test_the_declaration_matches_the_consumers_registry(implemented, path: Path) -> None:
    recipe = load_recipe(path)
    keys, found = keys_of(path), implemented[path.stem]
    if recipe.consumer.refused:
        assert not any(found), f"{path.name} says inference-models cannot load it, but it has {keys}"
    else:
        assert all(found), f"{path.name}: inference-models has no class for {keys} ({found})"
