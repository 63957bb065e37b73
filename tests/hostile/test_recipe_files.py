"""A recipe path that exists but is no regular readable file (issue 25, left over): a FIFO, a folder or a
dangling link named ``FAMILY.toml`` in ``--recipes`` was passed over in silence and the built-in recipe of
that name used instead. It is bad input (exit 2) naming the path, and opening it never blocks."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from packager.errors import RecipeError
from packager.recipe_checks import read_toml
from packager.recipes import find_recipes, load_recipe, recipe_of_architecture, resolve_family
from tests.hostile.helpers import clean_error, pack

QUICK_S = 90  # a refusal takes seconds; main went on with the built-in recipe (or blocked on the FIFO)


def fifo(path: Path) -> str:
    os.mkfifo(path)
    return "FIFO"


def folder(path: Path) -> str:
    path.mkdir()
    return "folder"


def dangling(path: Path) -> str:
    path.symlink_to(path.parent / "gone.toml")
    return "does not exist"


def link_to_fifo(path: Path) -> str:
    os.mkfifo(path.parent / "pipe")
    path.symlink_to(path.parent / "pipe")
    return "FIFO"


KINDS = [fifo, folder, dangling, link_to_fifo]


@pytest.mark.parametrize("make", KINDS, ids=lambda f: f.__name__)
def test_pack_refuses_a_recipe_that_is_no_regular_file(tmp_path: Path, make: Callable[[Path], str]) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    path = recipes / "minilm.toml"
    what = make(path)
    # an unknown variant: on main the built-in minilm recipe was taken and refused it (exit 2, wrong file)
    proc = pack(
        "minilm", "--recipes", str(recipes), "--variants", "nope", "--out", str(tmp_path / "out"),
        timeout=QUICK_S,
    )  # fmt: skip
    clean_error(proc, 2, str(path), what)
    assert "is not a variant" not in proc.stderr, "the built-in recipe was used instead"


@pytest.mark.parametrize("make", KINDS, ids=lambda f: f.__name__)
def test_resolve_family_names_the_path_that_is_no_regular_file(
    tmp_path: Path, make: Callable[[Path], str]
) -> None:
    path = tmp_path / "minilm.toml"
    what = make(path)
    builtin = Path(__file__).resolve().parents[2] / "recipes"
    with pytest.raises(RecipeError, match=f"{path}.*{what}"):
        resolve_family("minilm", [tmp_path, builtin])


def test_read_toml_never_blocks_on_a_fifo(tmp_path: Path) -> None:
    """No writer ever opens the FIFO: a plain open() would wait forever (the test would hang, not fail)."""
    path = tmp_path / "x.toml"
    os.mkfifo(path)
    with pytest.raises(RecipeError, match=r"x\.toml.*is a FIFO, not a regular file.*a regular TOML file"):
        read_toml(path)
    with pytest.raises(RecipeError, match="is a FIFO"):
        load_recipe(path)


def test_listing_and_architecture_lookup_name_a_fifo_too(tmp_path: Path) -> None:
    """``pack --list`` and verify-remote's recipe lookup load every file they find: a FIFO among them is
    named, not waited on."""
    os.mkfifo(tmp_path / "pipe.toml")
    assert "pipe" in find_recipes(tmp_path)
    with pytest.raises(RecipeError, match=r"pipe\.toml.*is a FIFO"):
        recipe_of_architecture("anything", [tmp_path])
    proc = pack("--list", "--recipes", str(tmp_path), timeout=QUICK_S)
    clean_error(proc, 2, str(tmp_path / "pipe.toml"), "FIFO")
