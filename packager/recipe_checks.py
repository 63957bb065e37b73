"""The recipe checks that span several keys, and reading the file itself; :mod:`packager.recipes` declares
the keys and calls these from its tables' ``validate``. Each raises a FieldError (or a RecipeError when it
knows the file) naming the dotted field and what would be accepted."""

from __future__ import annotations

import os
import re
import stat
import string
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from backends.errors import FieldError
from backends.options import MODEL_CLASS_PATTERN
from packager.errors import RecipeError

IMPORT_REF = {"pattern": MODEL_CLASS_PATTERN, "what": "an import reference"}
"""The rule of a ``module:Name`` key (a factory, a reference class)."""
MAX_DEPTH = 32
"""Tables and arrays nested deeper than this are no recipe (the deepest real key is about 6 levels)."""
ZIP_NAME_FIELDS = ("architecture", "family", "variant", "backend")
ZIP_FILE_RE = re.compile(r"[A-Za-z0-9._-]+\.zip")


def backend_names() -> list[str]:
    """The registered backends (plugins included): what a ``[backends.NAME]`` (and a
    ``[parity.backends.NAME]``) table may be called."""
    from backends.registry import BACKENDS  # numpy and every spec: loaded with a recipe, not by ``pack -h``

    return sorted(BACKENDS)


class NotRegularFile(OSError):
    """A path that is there but is no regular file (its kind is the message)."""


FILE_KINDS = {
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISDIR: "a folder",
    stat.S_ISSOCK: "a socket",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
}
"""How a path that is no regular file is named in the error."""


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file (NotRegularFile otherwise). A FIFO is never
    opened for reading in the blocking way (it would wait for a writer forever): the kind is checked before
    the open, the open does not block, and the kind is checked again on the descriptor (a path swapped in
    between is caught too)."""

    def refuse_unless_regular(mode: int) -> None:
        if not stat.S_ISREG(mode):
            raise NotRegularFile(next((k for test, k in FILE_KINDS.items() if test(mode)), "no file"))

    refuse_unless_regular(os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        refuse_unless_regular(os.fstat(fd).st_mode)
        return handle.read()


def read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML tree; RecipeError (exit 2) for a missing, unreadable, non-UTF-8, malformed or
    absurdly nested file, and for a path that is no regular file (a FIFO, a folder: named, never waited
    on)."""
    try:
        data = tomllib.loads(read_regular_file(path).decode("utf-8"))
    except NotRegularFile as exc:
        raise RecipeError(path, "<file>", f"is {exc}, not a regular file", "a regular TOML file") from None
    except FileNotFoundError:
        raise RecipeError(path, "<file>", "does not exist") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(
            path,
            "<file>",
            f"is not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r})",
            "a UTF-8 encoded TOML file",
        ) from None
    except OSError as exc:
        raise RecipeError(path, "<file>", f"cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(path, "<file>", f"is not valid TOML: {exc}") from None
    except RecursionError:
        raise RecipeError(
            path, "<file>", "nests arrays or tables too deep to parse", f"at most {MAX_DEPTH} levels"
        ) from None
    deep = too_deep(data)
    if deep is not None:
        raise RecipeError(
            path, deep, f"nests more than {MAX_DEPTH} levels deep", f"at most {MAX_DEPTH} levels"
        )
    return data


def too_deep(data: Any, limit: int = MAX_DEPTH) -> str | None:
    """The dotted path of the first value nested deeper than ``limit`` tables and arrays, or None (walked
    without recursion, so any depth is measured safely)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > limit:
            return where or "<file>"
        if isinstance(value, Mapping):
            stack += [(v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, where, depth + 1) for v in value]  # named by its key, not a page of [0]
    return None


def check_source(source: str, where: str) -> None:
    """The source is a URI weightpack can fetch (its scheme and form; nothing is fetched here)."""
    from packager.sources import parse_uri  # with its fetchers: imported when a recipe is loaded, not before

    try:
        parse_uri(source)
    except Exception as exc:  # SourceError and friends: a recipe error that names the field
        raise FieldError(where, str(exc)) from None


def check_tensor(t: Any, where: str) -> None:
    """``[[inputs.tensors]]``: a constant (``value``) takes no shape, shape set, state or batch axis; any
    other input exactly one of ``shape`` or ``shapes`` (of one rank); a batch axis is an axis of the input;
    ``low <= high``."""
    if t.value is not None:
        for name, given in (("shapes", t.shapes), ("state_from", t.state_from), ("shape", t.shape)):
            if given:
                raise FieldError(f"{where}.{name}", "does not go with value (a constant)", "value and dtype")
        if t.batch_axis is not None:
            raise FieldError(f"{where}.batch_axis", "a constant has no batch axis", '"none" or leave it out')
        return
    if (t.shape is None) == (not t.shapes):
        raise FieldError(where, "needs exactly one of shape or shapes", "shape = [1, 3, 48, 48]")
    if len({len(s) for s in t.shapes}) > 1:
        raise FieldError(f"{where}.shapes", f"{t.shapes} mixes ranks", "shapes of one rank")
    rank = len(t.shapes[0] if t.shapes else t.shape)
    if isinstance(t.batch_axis, int) and t.batch_axis >= rank:
        raise FieldError(
            f"{where}.batch_axis",
            f"{t.batch_axis!r} is not an axis of a rank-{rank} input",
            f'0..{rank - 1}, or "none"' if rank else '"none" (a 0-d input has no batch axis)',
        )
    if t.low > t.high:
        raise FieldError(f"{where}.high", f"{t.high} is below low {t.low}", f"a number >= low ({t.low})")


def check_steps(steps: int | None, stateful: list[str], min_steps: int, where: str) -> None:
    """A sequence is one call or at least ``min_steps`` calls; state inputs need a sequence."""
    if steps is None:
        return
    if stateful and steps == 1:
        raise FieldError(
            f"{where}.steps", f"state inputs {stateful} need a sequence", f"{min_steps}..10000 calls"
        )
    if steps != 1 and steps < min_steps:
        accepted = f"1 (one call) or {min_steps}..10000 calls in a sequence"
        raise FieldError(f"{where}.steps", f"{steps} steps", accepted)


def check_inputs(kind: str, texts: Sequence[str], tensors: Sequence[Any], where: str) -> None:
    """What each input kind needs: texts for text kinds, tensors for tensor kinds, one uint8 image for
    text-image; a shape set has the same length for every tensor."""
    if kind in ("text", "text-image") and (not texts or not all(isinstance(t, str) and t for t in texts)):
        raise FieldError(
            f"{where}.texts", "text inputs need a list of non-empty strings", 'texts = ["a sentence", ...]'
        )
    if kind == "tensor" and not tensors:
        raise FieldError(f"{where}.tensors", "tensor inputs need at least one [[inputs.tensors]] entry")
    image = tensors[0] if len(tensors) == 1 else None
    if kind == "text-image" and (
        image is None or len(image.shape) != 4 or image.shape[3] not in (1, 3) or image.dtype != "uint8"
    ):
        raise FieldError(
            f"{where}.tensors",
            "text-image inputs render the texts into one uint8 image tensor",
            '[{ name = "image", shape = [N, HEIGHT, WIDTH, 3], dtype = "uint8" }]',
        )
    counts = {len(t.shapes) for t in tensors if len(t.shapes) > 1}
    if len(counts) > 1:
        raise FieldError(
            f"{where}.tensors",
            f"shape sets of different lengths {sorted(counts)}",
            "the same number of shapes",
        )


def check_backends(
    path: Path, backends: Mapping[str, Any], variants: Sequence[str], zip_name: Callable[[str, str], str]
) -> None:
    """Each backend's layout is well formed, and every (variant, backend) gets its own valid zip name:
    placeholders known, no collisions (a second package would silently overwrite the first)."""
    from packager.consumer.layout import check_layout  # numpy and the backend contract: imported when used

    for bname, backend in backends.items():
        check_layout(path, f"backends.{bname}", backend.options.rename, backend.options.files)
        where = f"backends.{bname}.zip_name"
        try:
            fields = list(string.Formatter().parse(backend.zip_name))
        except ValueError as exc:
            raise FieldError(where, f"'{backend.zip_name}' is not a name template ({exc})") from None
        for _, field_name, spec, conversion in fields:
            if field_name is not None and (field_name not in ZIP_NAME_FIELDS or spec or conversion):
                raise FieldError(
                    where,
                    f"'{backend.zip_name}' has the placeholder {{{field_name}}}",
                    ", ".join(f"{{{f}}}" for f in ZIP_NAME_FIELDS) + ", without format specs",
                )
    owners: dict[str, tuple[str, str]] = {}
    for variant in variants:
        for bname in backends:
            name = zip_name(variant, bname)
            where = f"backends.{bname}.zip_name"
            if not ZIP_FILE_RE.fullmatch(name):
                raise FieldError(
                    where,
                    f"gives {name!r} for variant {variant!r}",
                    "a file name of [A-Za-z0-9._-] ending in .zip",
                )
            if name in owners:
                other = owners[name]
                raise FieldError(
                    where,
                    f"gives {name!r} for {variant}/{bname}, the same as for {other[0]}/{other[1]}: "
                    "one package would overwrite the other",
                    "names that differ per variant and backend, e.g. include {variant} and {backend}",
                )
            owners[name] = (variant, bname)
