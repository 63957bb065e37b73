"""The recipe reference (docs/recipe.md) is rendered from the declaration, so it cannot drift: every key a
recipe accepts is in it, with its type, default, accepted values and a description."""

from __future__ import annotations

from packager.recipe_doc import DOC, attribute_docs, render, tables

# Keys of backends whose folders their owner is reworking; they document these there (then drop them here).
UNDOCUMENTED = {
    ("backends.onnx", "exporter"),
    ("backends.onnx", "static_batch_size"),
    ("backends.onnx", "incompatible_providers"),
    ("backends.onnx", "copy_files"),
    ("backends.trt", "static_batch_size"),
    ("backends.trt", "workspace_mb"),
    ("backends.trt", "version_compatible"),
    ("backends.trt", "exclude_lean_runtime"),
    ("backends.trt", "hardware_compatibility"),
    ("backends.trt", "copy_files"),
}


def test_the_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "run: python -m packager.recipe_doc --write"


def sections(text: str) -> dict[str, str]:
    """Heading line -> the section under it."""
    parts = text.split("\n## ")[1:]
    return {part.split("\n", 1)[0]: part for part in parts}


def test_every_declared_key_is_documented_and_in_the_reference() -> None:
    """A scalar key is a row of its table's section; a nested table is a section of its own."""
    by_heading = sections(DOC.read_text(encoding="utf-8"))
    missing = set()
    for paths, cls in tables():
        title = f"`[[{paths[0][:-2]}]]`" if paths[0].endswith("[]") else f"`[{paths[0]}]`"
        (section,) = [body for heading, body in by_heading.items() if title in heading] or [""]
        for k in cls.declared():
            if k.rule.given:
                continue
            nested = "[" + f"{paths[0]}.{k.name}".lstrip(".")
            assert f"| `{k.name}` |" in section or any(nested in h for h in by_heading), (paths[0], k.name)
            if not attribute_docs(cls).get(k.attr):
                missing.add((paths[0], k.name))
    assert missing == UNDOCUMENTED


def test_a_documented_key_is_rendered_with_its_rule() -> None:
    """One row as a reader sees it: type, default, range and the docstring under the field."""
    assert (
        "| `min_iters` | int | `30` | an integer in [1, 10000000] | Steady state runs until both "
        "``min_iters`` and ``min_time_s`` are met. |"
    ) in render()
