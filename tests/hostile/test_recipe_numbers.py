"""Numbers in a recipe are validated like names (issue 25): every tolerance finite and >= 0, every bench value
in its range, and a structure too deep to be a recipe refused, each with the usual error shape: exit 2, the
file, the dotted field and what is accepted.

The recipe schema rewrite (issue 21) validates them; these tests were written before it landed (expected
to fail then, strictly) and hold it to the error shape now.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from packager.errors import RecipeError
from packager.recipes import load_recipe
from tests.hostile.helpers import recipe_copy

OUTPUT = "parity.outputs.sentence_embedding"


def added(line: str):
    return replace("min_iters = 30", f"min_iters = 30\n{line}")


def replace(old: str, new: str):
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


CASES = {
    "atol-nan": (replace("atol = 1e-5", "atol = nan"), f"{OUTPUT}.atol"),
    "atol-negative": (replace("atol = 1e-5", "atol = -1e-5"), f"{OUTPUT}.atol"),
    "atol-infinite": (replace("atol = 1e-5", "atol = inf"), f"{OUTPUT}.atol"),
    "rtol-nan": (replace("rtol = 1e-4", "rtol = nan"), f"{OUTPUT}.rtol"),
    "rtol-negative": (replace("rtol = 1e-4", "rtol = -0.5"), f"{OUTPUT}.rtol"),
    "min-cosine-nan": (replace("min_cosine = 0.9999", "min_cosine = nan"), "parity.min_cosine"),
    "min-cosine-above-one": (replace("min_cosine = 0.9999", "min_cosine = 1.5"), "parity.min_cosine"),
    "min-iters-negative": (replace("min_iters = 30", "min_iters = -1"), "bench.min_iters"),
    "min-time-negative": (replace("min_time_s = 0.5", "min_time_s = -0.5"), "bench.min_time_s"),
    "min-time-nan": (replace("min_time_s = 0.5", "min_time_s = nan"), "bench.min_time_s"),
    "max-time-nan": (replace("max_time_s = 4.0", "max_time_s = nan"), "bench.max_time_s"),
    "max-time-below-min": (replace("max_time_s = 4.0", "max_time_s = 0.1"), "bench.max_time_s"),
    "warmup-iters-negative": (
        replace("min_iters = 30", "min_iters = 30\nwarmup_iters = -3"),
        "bench.warmup_iters",
    ),
    "warmup-time-infinite": (added("warmup_s = inf"), "bench.warmup_s"),
    "max-length-negative": (replace("max_length = 64", "max_length = -5"), "inputs.max_length"),
    "max-length-huge": (replace("max_length = 64", "max_length = 99999999999999999999"), "inputs.max_length"),
}
# refused in this shape before the rewrite too
CHECKED_TODAY = {
    "target-ci-nan": (added("target_ci = nan"), "bench.target_ci"),
    "runs-zero": (added("runs = 0"), "bench.runs"),
    "batch-size-zero": (replace("batch_sizes = [1, 8]", "batch_sizes = [1, 0]"), "bench.batch_sizes"),
}
PARAMS = [*CASES, *CHECKED_TODAY]


@pytest.mark.parametrize("name", PARAMS)
def test_a_number_out_of_range_is_refused_naming_file_field_and_range(tmp_path: Path, name: str) -> None:
    edit, field = {**CASES, **CHECKED_TODAY}[name]
    path = recipe_copy(tmp_path, edit) / "minilm.toml"
    with pytest.raises(
        RecipeError, match=rf"minilm\.toml: field '{re.escape(field)}': .*\(accepted: "
    ) as caught:
        load_recipe(path)
    assert caught.value.exit_code == 2


def test_a_5000_deep_nested_array_is_refused_naming_the_file(tmp_path: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    path = recipe_copy(tmp_path, replace("texts = [", f"deep = {deep}\ntexts = [")) / "minilm.toml"
    with pytest.raises(RecipeError, match=r"minilm\.toml: .*(nest|deep)") as caught:
        load_recipe(path)
    assert caught.value.exit_code == 2
