"""docs/recipe.md, the recipe reference, rendered from the declaration (:mod:`packager.recipes` and each
built-in backend's options class): every key with its type, default, accepted values and the docstring
under its field. ``python -m packager.recipe_doc --write`` rewrites the file; a test checks it is current.
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from backends.registry import BACKENDS
from backends.schema import Table, describe, type_name
from packager.recipes import Recipe

DOC = Path(__file__).resolve().parent.parent / "docs" / "recipe.md"
PLACEHOLDERS = {"variants": "NAME", "outputs": "OUTPUT", "backends": "BACKEND"}
HEADER = """\
# Recipe reference

<!-- Rendered from the declaration by `python -m packager.recipe_doc --write`; edit the docstrings in
packager/recipes.py, packager/recipe_inputs.py or a backend's spec.py, not this file. -->

One TOML file per model family; docs/recipes.md shows a whole recipe. Unknown keys are errors
(with the accepted keys and the likely typo), numbers are checked like names (every float finite, every
integer within 64 bits and its range), and every error names the file, the dotted field and what would be
accepted (exit 2). A key without a default is required.
"""


@functools.cache
def attribute_docs(cls: type) -> dict[str, str]:
    """field -> the docstring under it, for ``cls`` and the classes it inherits from (nearest first)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        if not isinstance(body, ast.ClassDef):
            continue
        for stmt, after in zip(body.body, body.body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(after.value.value.split())
    return docs


def tables() -> Iterator[tuple[list[str], type[Table]]]:
    """(dotted paths, table class) for every table of a recipe, in declaration order; a class met at
    several paths (``[inputs]`` and ``[variants.NAME.inputs]``) once; backends one by one."""
    found: dict[type[Table], list[str]] = {}

    def walk(path: str, cls: type[Table]) -> None:
        if path == "backends.BACKEND":
            for name in sorted(
                n for n, s in BACKENDS.items() if s.options.__module__.startswith("backends.")
            ):
                walk(f"backends.{name}", BACKENDS[name].options)
            return
        found.setdefault(cls, []).append(path)
        for k in cls.declared():
            if not k.rule.given:
                for sub, nested in _nested(k.hint):
                    walk(f"{path}.{k.name}{sub.format(PLACEHOLDERS.get(k.name, 'NAME'))}".lstrip("."), nested)

    walk("", Recipe)
    for cls, paths in found.items():
        yield sorted(paths, key=len), cls


def _nested(hint: Any) -> Iterator[tuple[str, type[Table]]]:
    """The tables inside a type: itself, ``dict[str, T]`` (``.NAME``) or ``list[T]`` (``[]``)."""
    if isinstance(hint, type) and issubclass(hint, Table):
        yield "", hint
    origin, args = get_origin(hint), get_args(hint)
    if origin is dict and args:
        yield from ((".{}" + sub, t) for sub, t in _nested(args[1]))
    elif origin is list and args:
        yield from (("[]" + sub, t) for sub, t in _nested(args[0]))
    elif args and origin is not dict and origin is not list:
        for arg in args:
            yield from _nested(arg)


def rows(cls: type[Table]) -> Iterator[tuple[str, str, str, str, str]]:
    """(key, type, default, accepted, description) for each key the file may hold."""
    docs = attribute_docs(cls)
    for k in cls.declared():
        if k.rule.given or any(True for _ in _nested(k.hint)):
            continue
        default = "required" if k.required else f"`{k.default!r}`".replace("|", "\\|")
        accepted = describe(k.rule, k.hint).replace("|", "\\|")
        yield k.name, doc_type(k.hint), default, accepted, docs.get(k.attr, "")


def doc_type(hint: Any) -> str:
    """``int``, ``list of int``, ``table of str``: the type as the reference shows it."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return "str"
    if args and origin is list:
        return f"list of {doc_type(args[0])}"
    if args and origin is dict:
        return "table" if args[1] is Any else f"table of {doc_type(args[1])}"
    if args:
        return " or ".join(doc_type(a) for a in args if a is not type(None))
    return type_name(hint)


def render() -> str:
    out = [HEADER]
    for paths, cls in tables():
        table_rows = list(rows(cls))
        if not table_rows:
            continue
        title = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        names = [f"`[[{p[:-2]}]]`" if p.endswith("[]") else f"`[{p}]`" for p in paths]
        out.append(f"\n## {', '.join(names)}\n\n{title}\n")
        out.append("| key | type | default | accepted | what it is |\n|---|---|---|---|---|")
        out += [
            f"| `{name}` | {kind} | {default} | {accepted} | {doc} |"
            for name, kind, default, accepted, doc in table_rows
        ]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m packager.recipe_doc", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    p.add_argument("--write", action="store_true", help=f"rewrite {DOC.name} (default: print it)")
    args = p.parse_args(argv)
    text = render()
    if args.write:
        DOC.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
