"""Declared tables: a frozen dataclass is the schema of one TOML table, read and checked generically.

Both the recipe (``packager.recipes``) and each backend's ``[backends.NAME]`` options
(:class:`backends.options.BackendOptions`) are declared this way, so one key is declared once, in one line:

    min_iters: int = key(30, ge=1, le=10**7)
    \"\"\"Steady-state iterations per batch size (at least).\"\"\"

- the field name is the accepted key (``key(toml=...)`` when the file spells it otherwise);
- the annotation is the accepted type: ``str``, ``int``, ``float``, ``bool``, ``list[T]``, ``dict[str, T]``,
  ``Literal[...]``, ``X | None``, ``Any``, or another :class:`Table` for a nested table;
- the default is the default (no default: the key is required);
- :func:`key`'s arguments are the constraints (:class:`Rule`), checked on every number and string in the
  value; the attribute docstring under the field is its documentation (``packager.recipe_doc`` renders it).

Checks that need several keys at once live in the table's :meth:`Table.validate`. Every error is a
:class:`~backends.errors.FieldError` naming the dotted field, what is wrong and what would be accepted.
Without a rule, a float must still be finite and an int fit in 64 bits: numbers are validated like names.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

from backends.errors import FieldError

INT64_MAX = 2**63 - 1
MISSING: Any = dataclasses.MISSING
TableT = TypeVar("TableT", bound="Table")


@dataclasses.dataclass(frozen=True)
class Rule:
    """The constraints of one key (all optional). Bounds and finiteness apply to every number of the value
    (each item of a list, each dimension of a list of shapes), ``choices`` and ``pattern`` to every string."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | Callable[[], Iterable[str]] | None = None
    """Accepted strings; a callable when they are known only at load time (the registered backends)."""
    pattern: str | None = None
    """A regular expression every string must match in full."""
    what: str = ""
    """What a string that matches ``pattern`` is ("an import reference"): the error says it is not that."""
    min_items: int | None = None
    keys: Rule | None = None
    """The rule a table's own keys follow (``[variants.NAME]``: NAME lower-case)."""
    accepted: str = ""
    """What the error says would be accepted; default: written from the rule."""
    toml: str = ""
    """The key's name in the file when it differs from the field's (``outputs`` for ``tolerances``)."""
    given: bool = False
    """Not read from the file: the parser passes it in (the recipe's path; a table's own name)."""

    def allowed(self) -> tuple[str, ...] | None:
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)


def key(default: Any = MISSING, *, factory: Callable[[], Any] = MISSING, **rule: Any) -> Any:
    """A declared key: its default (or ``factory`` for a mutable one; neither: required) and its
    :class:`Rule`."""
    return dataclasses.field(default=default, default_factory=factory, metadata={"rule": Rule(**rule)})


@dataclasses.dataclass(frozen=True)
class Key:
    """One declared key as the parser sees it."""

    name: str
    """The key in the file."""
    attr: str
    """The dataclass field."""
    hint: Any
    rule: Rule
    required: bool
    default: Any


class Table:
    """Base of a declared table (subclasses are frozen dataclasses); see the module docstring."""

    noun: ClassVar[str] = "field"
    """What an unknown key "is not a known ..." (``option`` in a backend table)."""
    positive: ClassVar[tuple[str, ...]] = ()
    """Integer fields that must be > 0 when set (the older spelling of ``key(ge=1)``)."""

    @classmethod
    def declared(cls) -> list[Key]:
        """Every key of this table, in declaration order (``given`` fields included)."""
        return _declared(cls)

    @classmethod
    def read(cls, attr: str, value: Any, where: str) -> Any:
        """One key's value read and checked as the file's would be (a CLI flag that overrides the key)."""
        (k,) = [k for k in cls.declared() if k.attr == attr]
        value = coerce(k.hint, value, where)
        check(k.rule, value, where)
        return value

    @classmethod
    def parse(
        cls: type[TableT],
        table: Mapping[str, Any] | None,
        where: str = "",
        given: Mapping[str, Any] | None = None,
    ) -> TableT:
        """Build the table from its TOML mapping; FieldError names the field and the accepted values."""
        table = {} if table is None else table
        if not isinstance(table, Mapping):
            raise FieldError(where or "<table>", f"has type {type(table).__name__}", "a table")
        keys = {k.name: k for k in cls.declared() if not k.rule.given}
        unknown = sorted(set(table) - set(keys))
        if unknown:
            raise FieldError(join(where, unknown[0]), f"is not a known {cls.noun}", _known(unknown[0], keys))
        values = dict(given or {})
        for name, k in keys.items():
            path = join(where, name)
            if name in table:
                check_keys(k.rule.keys, table[name], path)
                value = coerce(k.hint, table[name], path)
                check(k.rule, value, path)
                values[k.attr] = value
            elif k.required:
                raise FieldError(path, "is required", k.rule.accepted or type_name(k.hint))
        obj = cls(**values)
        for name in cls.positive:
            value = getattr(obj, name)
            if value is not None and value <= 0:
                raise FieldError(join(where, name), f"{value} is not positive", "an integer > 0")
        obj.validate(where)
        return obj.normalized()

    def validate(self, where: str = "") -> None:
        """Check keys against each other (and the environment); raise FieldError. Default: nothing."""

    def normalized(self: TableT) -> TableT:
        """The table as the program uses it (``target_ci = 0`` means off: None). Default: itself."""
        return self


@functools.cache
def _declared(cls: type) -> list[Key]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        rule = f.metadata.get("rule", Rule())
        required = f.default is MISSING and f.default_factory is MISSING
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        out.append(Key(rule.toml or f.name, f.name, hints[f.name], rule, required, default))
    return out


def _known(unknown: str, keys: Iterable[str]) -> str:
    """The accepted keys, and the one that was probably meant."""
    names = sorted(keys)
    close = difflib.get_close_matches(unknown, names, n=1)
    return ", ".join(names) + (f"; did you mean '{close[0]}'?" if close else "")


def join(where: str, key: str) -> str:
    """``where.key`` (or ``key`` at the top of a table)."""
    return f"{where}.{key}" if where else key


def type_name(hint: Any) -> str:
    """The type an error says is accepted: ``int``, ``float``, ``str``, ``a list``, ``a table``, ..."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(hint) if a is not type(None))
    if origin is Literal:
        return ", ".join(map(str, get_args(hint)))
    if origin in (list, tuple):
        return "a list"
    if origin in (dict, Mapping) or hint in (dict, Mapping) or _is_table(hint):
        return "a table"
    return getattr(hint, "__name__", str(hint))


def _is_table(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Table)


def coerce(hint: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``hint`` (ints are accepted where floats are); nested tables
    are parsed by their own class."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(args) < len(get_args(hint)):
            return None
        errors = []
        for arg in args:
            try:
                return coerce(arg, value, where)
            except FieldError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        accepted = get_args(hint)
        if value not in accepted or (isinstance(value, bool) and not any(a is value for a in accepted)):
            raise FieldError(where, f"{value!r} is not accepted", ", ".join(map(str, accepted)))
        return value
    if _is_table(hint):
        return hint.parse(value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise FieldError(where, f"has type {type(value).__name__}", "a list")
        (item,) = get_args(hint)[:1] or (Any,)
        return [coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise FieldError(where, f"has type {type(value).__name__}", "a table")
        item = get_args(hint)[1] if get_args(hint) else Any
        if _is_table(item):
            names = {k.attr for k in item.declared() if k.rule.given}
            return {
                k: item.parse(v, join(where, k), {"name": k} if "name" in names else None)
                for k, v in value.items()
            }
        return {k: coerce(item, v, join(where, k)) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, hint) or (isinstance(value, bool) and hint is not bool):
        raise FieldError(where, f"has type {type(value).__name__}", type_name(hint))
    return value


def check(rule: Rule, value: Any, where: str) -> None:
    """Check a coerced value against its rule: its size, then every number and string in it.
    The error names the key (``bench.batch_sizes``) and, in the problem, the item that is wrong."""
    if value is None:
        return
    if rule.min_items is not None and len(value) < rule.min_items:
        accepted = rule.accepted or (describe(rule.keys, str) if rule.keys else f"{rule.min_items} or more")
        problem = "is empty" if rule.min_items == 1 else f"has fewer than {rule.min_items} entries"
        raise FieldError(where, problem, accepted)
    for index, leaf in _leaves(value, ""):
        problem = _number_problem(rule, leaf) if _is_number(leaf) else None
        if isinstance(leaf, str):
            problem = _string_problem(rule, leaf)
        if problem:
            item = f"item {index} of {value!r}: " if index else ""
            raise FieldError(where, item + problem, rule.accepted or _accepted(rule, leaf))


def check_keys(rule: Rule | None, table: Any, where: str) -> None:
    """A table's own keys against their rule (before the values are read: a backend's name picks the
    class its table is read with)."""
    if rule is None or not isinstance(table, Mapping):
        return
    for name in table:
        problem = _string_problem(rule, name)
        if problem:
            raise FieldError(join(where, name), problem, rule.accepted or _accepted(rule, name))


def _leaves(value: Any, index: str) -> Iterator[tuple[str, Any]]:
    """Every number and string of a value, with its index (``[1][2]``); tables are not entered."""
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{index}[{i}]")
    elif _is_number(value) or isinstance(value, str):
        yield index, value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_problem(rule: Rule, value: float) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    if rule.ge is not None and value < rule.ge:
        return f"{value} is below {_fmt(rule.ge)}" if rule.ge != 1 else f"{value} is not positive"
    if rule.gt is not None and value <= rule.gt:
        return f"{value} is not above {_fmt(rule.gt)}"
    if rule.le is not None and value > rule.le:
        return f"{value} is above {_fmt(rule.le)}"
    if rule.lt is not None and value >= rule.lt:
        return f"{value} is not below {_fmt(rule.lt)}"
    if isinstance(value, int) and abs(value) > INT64_MAX:
        return f"{value} does not fit in 64 bits"
    return None


def _string_problem(rule: Rule, value: str) -> str | None:
    allowed = rule.allowed()
    if allowed is not None and value not in allowed:
        return f"'{value}' is not accepted"
    if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
        return f"'{value}' is not {rule.what or 'accepted'}"
    return None


def _accepted(rule: Rule, value: Any) -> str:
    """What the rule accepts, in words: ``an integer in [1, 1024]``, ``a finite number >= 0``."""
    if isinstance(value, str):
        allowed = rule.allowed()
        if allowed is not None:
            return ", ".join(allowed)
        return f"a string matching {rule.pattern}"
    low = f"[{_fmt(rule.ge)}" if rule.ge is not None else f"({_fmt(rule.gt)}" if rule.gt is not None else None
    high = (
        f"{_fmt(rule.le)}]" if rule.le is not None else f"{_fmt(rule.lt)})" if rule.lt is not None else None
    )
    noun = "an integer" if isinstance(value, int) else "a finite number"
    if low and high:
        return f"{noun} in {low}, {high}"
    if low:
        return f"{noun} {'>=' if low[0] == '[' else '>'} {low[1:]}"
    if high:
        return f"{noun} {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
    return f"{noun} of at most 64 bits" if isinstance(value, int) else noun


def _fmt(bound: float) -> str:
    """A bound as a person writes it: ``1024``, ``0.5``, ``1e-06``."""
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e15 else f"{bound:g}"


def describe(rule: Rule, hint: Any) -> str:
    """What a key accepts beyond its type, in words (the reference docs' "accepted" column)."""
    if rule.accepted:
        return rule.accepted
    allowed = rule.allowed()
    if allowed is not None:
        return ", ".join(allowed)
    if get_origin(hint) is Literal:
        return ", ".join(map(str, get_args(hint)))
    parts = []
    if rule.pattern is not None:
        parts.append(rule.what or f"matches {rule.pattern}")
    if any(b is not None for b in (rule.ge, rule.gt, rule.le, rule.lt)):
        parts.append(_accepted(rule, 0 if "int" in str(hint) else 0.0))
    elif "float" in str(hint):
        parts.append("a finite number")
    if rule.min_items:
        parts.append(f"at least {rule.min_items}")
    return "; ".join(parts)
